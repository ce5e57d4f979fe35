import HashRing from 'hashring';
import type { BalancerEndpoint } from './balancer.js';

/** Virtual nodes of an endpoint of the lightest weight (ketama's 40, i.e. 160 ring points). */
const VNODES_PER_LIGHTEST_ENDPOINT = 40;
/** Bound on the virtual nodes of one ring, so that a 1:1000 weight spread stays cheap to build. */
const MAX_VNODES_PER_RING = 10_000;

/**
 * A ketama ring (from `hashring`) over one service's endpoints, with virtual nodes in
 * proportion to weight.
 *
 * The virtual-node counts are computed here rather than by the library: it derives them as
 * `floor(weight / total × 40 × n)`, which gives an endpoint no point at all (so never a key,
 * not even on failover) once its weight is below about 1/80 of the total.
 */
export class WeightedRing {
  readonly #ring: HashRing;
  readonly #bySidecarId = new Map<string, BalancerEndpoint>();

  constructor(endpoints: readonly BalancerEndpoint[]) {
    const lightest = Math.min(...endpoints.map((e) => e.weight));
    const totalWeight = endpoints.reduce((sum, e) => sum + e.weight, 0);
    const vnodesPerWeight = Math.min(VNODES_PER_LIGHTEST_ENDPOINT / lightest, MAX_VNODES_PER_RING / totalWeight);
    const servers: Record<string, { vnodes: number }> = {};
    for (const endpoint of endpoints) {
      servers[endpoint.sidecarId] = { vnodes: Math.max(1, Math.round(endpoint.weight * vnodesPerWeight)) };
      this.#bySidecarId.set(endpoint.sidecarId, endpoint);
    }
    // A default of 0 never equals a computed count: the library only uses a server's own
    // count when it differs from the default.
    this.#ring = new HashRing(servers, 'md5', { 'vnode count': 0 });
  }

  /** Number of endpoints on the ring. */
  get size(): number {
    return this.#bySidecarId.size;
  }

  /** The endpoint of `sidecarId`, if it is on the ring. */
  endpoint(sidecarId: string): BalancerEndpoint | undefined {
    return this.#bySidecarId.get(sidecarId);
  }

  /** Every endpoint on the ring. */
  endpoints(): IterableIterator<BalancerEndpoint> {
    return this.#bySidecarId.values();
  }

  /** Up to `max` distinct endpoints met walking the ring from `key`'s point. */
  walk(key: string, max = this.size): BalancerEndpoint[] {
    const ids = max === 1 ? [this.#ring.get(key)] : this.#ring.range(key, Math.min(max, this.size));
    const found: BalancerEndpoint[] = [];
    for (const id of ids) {
      const endpoint = this.#bySidecarId.get(id);
      if (endpoint !== undefined) found.push(endpoint);
    }
    return found;
  }
}
