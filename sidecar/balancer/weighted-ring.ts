import HashRing from 'hashring';
import type { BalancerEndpoint } from './balancer.js';

/** Virtual nodes of an endpoint of the lightest weight (ketama's 40, i.e. 160 ring points). */
const VNODES_PER_LIGHTEST_ENDPOINT = 40;
/** Bound on the virtual nodes of one ring, so that a 1:1000 weight spread stays cheap to build. */
const MAX_VNODES_PER_RING = 10_000;
/** Keys whose owner is remembered; the memo starts over when full (a new ring starts empty too). */
const MAX_REMEMBERED_OWNERS = 4096;

/**
 * A ketama ring (from `hashring`) over one service's endpoints, with virtual nodes in
 * proportion to weight.
 *
 * The virtual-node counts are computed here rather than by the library: it derives them as
 * `floor(weight / total × 40 × n)`, which gives an endpoint no point at all (so never a key,
 * not even on failover) once its weight is below about 1/80 of the total.
 *
 * The library's `get` is never called: its lookup cache is a plain object, so a key such as
 * `constructor` read a built-in as a cached entry (a wrong owner), and `__proto__` wrote the
 * cache's list links onto Object.prototype, giving every object in the process a `value`. The
 * owner comes from `range(key, 1)`, remembered in a Map.
 */
export class WeightedRing {
  readonly #ring: HashRing;
  readonly #bySidecarId = new Map<string, BalancerEndpoint>();
  /** Key → owner, so that a key seen again (source-ip, fixed policies) costs no md5. */
  readonly #ownerByKey = new Map<string, BalancerEndpoint>();

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
    if (max === 1) {
      const owner = this.#owner(key);
      return owner === undefined ? [] : [owner];
    }
    const ids = this.#ring.range(key, Math.min(max, this.size));
    const found: BalancerEndpoint[] = [];
    for (const id of ids) {
      const endpoint = this.#bySidecarId.get(id);
      if (endpoint !== undefined) found.push(endpoint);
    }
    return found;
  }

  #owner(key: string): BalancerEndpoint | undefined {
    const remembered = this.#ownerByKey.get(key);
    if (remembered !== undefined) return remembered;
    const [id] = this.#ring.range(key, 1);
    const owner = id === undefined ? undefined : this.#bySidecarId.get(id);
    if (owner === undefined) return undefined;
    if (this.#ownerByKey.size >= MAX_REMEMBERED_OWNERS) this.#ownerByKey.clear();
    this.#ownerByKey.set(key, owner);
    return owner;
  }
}
