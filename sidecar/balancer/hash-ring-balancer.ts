import { performance } from 'node:perf_hooks';
import { ValidationError } from '../../proto/errors.js';
import type { Balancer, BalancerEndpoint, BalancerObserver, PickResult, StreamLease } from './balancer.js';
import { DEFAULT_LOAD_FACTOR, loadBound, pickUnderBound } from './bounded-load.js';
import type { EjectionOptions } from './ejection.js';
import { DEFAULT_EJECTION, EndpointFailures } from './ejection.js';
import type { EndpointState, LeaseScope, ServiceState } from './endpoint-lease.js';
import { EndpointLease } from './endpoint-lease.js';
import { WeightedRing } from './weighted-ring.js';

export interface HashRingBalancerInit {
  /**
   * `c` of bounded-load hashing: a pick never takes an endpoint above `c` times its weighted
   * share of this sidecar's active streams to the service. At least 1.
   * @default 1.25
   */
  loadFactor?: number;
  /** Streams this sidecar keeps open to one endpoint at most; beyond it the next one is used. @default unlimited */
  maxStreamsPerEndpoint?: number;
  ejection?: EjectionOptions;
  observer?: BalancerObserver;
  /** Monotonic milliseconds; tests inject a fake clock. @default performance.now */
  now?: () => number;
}

/** Load and failure record of one endpoint, as {@link HashRingBalancer.endpointStats} reports it. */
export interface EndpointStats {
  sidecarId: string;
  activeStreams: number;
  failureStreak: number;
  ejected: boolean;
}

const noObserver: BalancerObserver = { endpointEjected: () => undefined, boundedLoadSkipped: () => undefined };

/**
 * Consistent hashing over a service's healthy endpoints, weights respected, with bounded
 * loads, passive ejection of failing endpoints and a stream limit per endpoint.
 *
 * A pick walks the ring from the key's point and skips, in this order: endpoints already
 * tried for the connection; ejected endpoints (unless no other is left to try: a stale
 * ejection beats refusing the connection); endpoints at their stream limit; endpoints above
 * their load bound. When an endpoint leaves, only the keys it held move.
 */
export class HashRingBalancer implements Balancer {
  readonly #services = new Map<string, ServiceState>();
  readonly #loadFactor: number;
  readonly #maxStreamsPerEndpoint: number;
  readonly #ejection: Required<EjectionOptions>;
  readonly #observer: BalancerObserver;
  readonly #now: () => number;
  readonly #leaseScope: LeaseScope;

  constructor(init: HashRingBalancerInit = {}) {
    this.#loadFactor = init.loadFactor ?? DEFAULT_LOAD_FACTOR;
    if (!(this.#loadFactor >= 1)) throw new ValidationError(`load factor must be at least 1, got ${this.#loadFactor}`);
    this.#maxStreamsPerEndpoint = init.maxStreamsPerEndpoint ?? Number.POSITIVE_INFINITY;
    if (!(this.#maxStreamsPerEndpoint >= 1)) throw new ValidationError(`max streams per endpoint must be at least 1, got ${this.#maxStreamsPerEndpoint}`);
    // Field by field: an option given as `undefined` means the default.
    this.#ejection = {
      consecutiveFailures: init.ejection?.consecutiveFailures ?? DEFAULT_EJECTION.consecutiveFailures,
      baseBackoffMs: init.ejection?.baseBackoffMs ?? DEFAULT_EJECTION.baseBackoffMs,
      maxBackoffMs: init.ejection?.maxBackoffMs ?? DEFAULT_EJECTION.maxBackoffMs,
    };
    this.#observer = init.observer ?? noObserver;
    this.#now = init.now ?? (() => performance.now());
    this.#leaseScope = { services: this.#services, observer: this.#observer, now: this.#now };
  }

  update(service: string, endpoints: readonly BalancerEndpoint[]): void {
    const state = this.#services.get(service) ?? { ring: undefined, endpoints: new Map<string, EndpointState>() };
    // A fresh ring per change: rings are small, and the library's lookup cache must not
    // answer with an endpoint that has left.
    state.ring = endpoints.length === 0 ? undefined : new WeightedRing(endpoints);
    const present = new Set(endpoints.map((e) => e.sidecarId));
    for (const [sidecarId, endpoint] of state.endpoints) {
      endpoint.onRing = present.has(sidecarId);
      if (!endpoint.onRing && endpoint.activeStreams === 0) state.endpoints.delete(sidecarId);
    }
    for (const sidecarId of present) {
      if (!state.endpoints.has(sidecarId)) {
        state.endpoints.set(sidecarId, { activeStreams: 0, failures: new EndpointFailures(this.#ejection), onRing: true });
      }
    }
    if (state.ring === undefined && state.endpoints.size === 0) this.#services.delete(service);
    else this.#services.set(service, state);
  }

  candidates(service: string, key: string, max = 3): BalancerEndpoint[] {
    return this.#services.get(service)?.ring?.walk(key, max) ?? [];
  }

  pick(service: string, key: string, tried: ReadonlySet<string> = new Set()): PickResult {
    const state = this.#services.get(service);
    const ring = state?.ring;
    if (state === undefined || ring === undefined) return { ok: false, reason: 'no-endpoints' };
    const nowMs = this.#now();
    const stateOf = (endpoint: BalancerEndpoint): EndpointState => state.endpoints.get(endpoint.sidecarId)!;
    const isEjected = (endpoint: BalancerEndpoint): boolean => stateOf(endpoint).failures.isEjected(nowMs);
    const hasRoom = (endpoint: BalancerEndpoint): boolean => stateOf(endpoint).activeStreams < this.#maxStreamsPerEndpoint;

    // The load is shared by the endpoints in rotation (all of them when all are ejected).
    let sharing = [...ring.endpoints()].filter((e) => !isEjected(e));
    if (sharing.length === 0) sharing = [...ring.endpoints()];
    let totalActiveStreams = 0;
    let totalWeight = 0;
    for (const endpoint of sharing) {
      totalActiveStreams += stateOf(endpoint).activeStreams;
      totalWeight += endpoint.weight;
    }

    // The usual case, without walking the whole ring: the key's owner can take the stream.
    const owner = ring.walk(key, 1)[0];
    if (owner !== undefined && !tried.has(owner.sidecarId) && !isEjected(owner) && hasRoom(owner)) {
      if (stateOf(owner).activeStreams + 1 <= loadBound(owner.weight, totalActiveStreams, totalWeight, this.#loadFactor)) {
        return { ok: true, lease: this.#lease(service, owner, state) };
      }
    }

    const untried = ring.walk(key).filter((e) => !tried.has(e.sidecarId));
    if (untried.length === 0) return { ok: false, reason: 'all-tried' };
    const inRotation = untried.filter((e) => !isEjected(e));
    const withRoom = (inRotation.length > 0 ? inRotation : untried).filter(hasRoom);
    if (withRoom.length === 0) return { ok: false, reason: 'all-full' };
    const loaded = withRoom.map((e) => ({ weight: e.weight, activeStreams: stateOf(e).activeStreams }));
    const { index, skipped } = pickUnderBound(loaded, totalActiveStreams, totalWeight, this.#loadFactor);
    for (let i = 0; i < skipped; i++) this.#observer.boundedLoadSkipped(service);
    return { ok: true, lease: this.#lease(service, withRoom[index]!, state) };
  }

  /** Load and failure record of every endpoint of `service` on the ring. */
  endpointStats(service: string): EndpointStats[] {
    const state = this.#services.get(service);
    if (state === undefined) return [];
    const nowMs = this.#now();
    const stats: EndpointStats[] = [];
    for (const [sidecarId, endpoint] of state.endpoints) {
      if (!endpoint.onRing) continue;
      const { activeStreams, failures } = endpoint;
      stats.push({ sidecarId, activeStreams, failureStreak: failures.failureStreak, ejected: failures.isEjected(nowMs) });
    }
    return stats;
  }

  #lease(service: string, endpoint: BalancerEndpoint, state: ServiceState): StreamLease {
    return new EndpointLease(this.#leaseScope, service, state, endpoint);
  }
}
