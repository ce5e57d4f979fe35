import type { BalancerEndpoint, BalancerObserver, StreamLease } from './balancer.js';
import type { EndpointFailures } from './ejection.js';
import type { WeightedRing } from './weighted-ring.js';

/** The balancer's record of one endpoint of a service. */
export interface EndpointState {
  activeStreams: number;
  readonly failures: EndpointFailures;
  onRing: boolean;
}

/** The balancer's record of one service. */
export interface ServiceState {
  ring: WeightedRing | undefined;
  /** Endpoints on the ring, and those that left while streams to them were still open. */
  readonly endpoints: Map<string, EndpointState>;
}

/** What every lease of one balancer shares. */
export interface LeaseScope {
  readonly services: Map<string, ServiceState>;
  readonly observer: BalancerObserver;
  now(): number;
}

/**
 * One stream's hold on an endpoint. A class rather than an object of closures: a sidecar keeps
 * one per open stream, and three closures with their context cost three times the memory.
 */
export class EndpointLease implements StreamLease {
  readonly endpoint: BalancerEndpoint;
  readonly #scope: LeaseScope;
  readonly #service: string;
  readonly #state: ServiceState;
  readonly #held: EndpointState;
  #released = false;

  constructor(scope: LeaseScope, service: string, state: ServiceState, endpoint: BalancerEndpoint) {
    this.#scope = scope;
    this.#service = service;
    this.#state = state;
    this.endpoint = endpoint;
    this.#held = state.endpoints.get(endpoint.sidecarId)!;
    this.#held.activeStreams += 1;
  }

  succeeded(): void {
    this.#held.failures.succeeded(this.#scope.now());
  }

  failed(): { ejectedForMs: number; consecutiveFailures: number } | undefined {
    const ejectedForMs = this.#held.failures.failed(this.#scope.now());
    if (ejectedForMs === undefined) return undefined;
    this.#scope.observer.endpointEjected(this.#service);
    return { ejectedForMs, consecutiveFailures: this.#held.failures.failureStreak };
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    const held = this.#held;
    const state = this.#state;
    held.activeStreams -= 1;
    if (held.onRing || held.activeStreams > 0) return;
    // The endpoint left the ring while this stream was open: forget it now.
    const { services } = this.#scope;
    if (state.endpoints.get(this.endpoint.sidecarId) === held) state.endpoints.delete(this.endpoint.sidecarId);
    if (state.ring === undefined && state.endpoints.size === 0 && services.get(this.#service) === state) services.delete(this.#service);
  }
}
