/** What the balancer knows of one endpoint of a service. */
export interface BalancerEndpoint {
  /** Stable id of the endpoint's sidecar; the node name on the ring. */
  sidecarId: string;
  /** The sidecar's link listener: `host:port` or a link URL. */
  address: string;
  /** Relative share of keys, 1..1000. */
  weight: number;
  /** The endpoint's zone: another zone than the caller's is reached through gateways. */
  zone?: string;
}

/**
 * One stream's hold on the endpoint it was sent to: it counts toward the endpoint's load from
 * the pick until `release`, and reports how the endpoint behaved.
 */
export interface StreamLease {
  readonly endpoint: BalancerEndpoint;
  /** The endpoint served the stream (its app answered): ends the endpoint's failure streak. */
  succeeded(): void;
  /**
   * The endpoint failed the stream (link dial failed, or its app was unreachable). Returns
   * how long the endpoint is now ejected for, or `undefined` when this did not eject it.
   */
  failed(): { ejectedForMs: number; consecutiveFailures: number } | undefined;
  /** The stream is over (or never opened): it no longer counts toward load. Idempotent. */
  release(): void;
}

/** Why no endpoint could be picked. */
export type PickRefusal =
  /** The service has no healthy endpoint. */
  | 'no-endpoints'
  /** Every endpoint was already tried for this connection. */
  | 'all-tried'
  /** Every endpoint left to try is at its stream limit. */
  | 'all-full';

/** The outcome of {@link Balancer.pick}. */
export type PickResult = { ok: true; lease: StreamLease } | { ok: false; reason: PickRefusal };

/**
 * Picks the endpoint for a connection. Implementations keep one ring per service and are
 * told of changes through `update`.
 */
export interface Balancer {
  /** Replaces the healthy endpoints of `service` (an empty list removes the service). */
  update(service: string, endpoints: readonly BalancerEndpoint[]): void;
  /**
   * Endpoints of `service` in ring order from `key`'s point, the key's owner first, ignoring
   * load and failures; empty when the service has none.
   */
  candidates(service: string, key: string, max?: number): BalancerEndpoint[];
  /**
   * Picks the endpoint for a new stream to `service` and counts the stream against it at once
   * (so that concurrent picks see it), skipping the endpoints in `tried`.
   */
  pick(service: string, key: string, tried?: ReadonlySet<string>): PickResult;
}

/** What the balancer reports; the sidecar metrics implement it. */
export interface BalancerObserver {
  /** An endpoint of `service` was ejected after consecutive failures. */
  endpointEjected(service: string): void;
  /** A pick passed over an endpoint of `service` because it was above its load bound. */
  boundedLoadSkipped(service: string): void;
}
