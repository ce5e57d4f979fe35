/** What the balancer knows of one endpoint of a service. */
export interface BalancerEndpoint {
  /** Stable id of the endpoint's sidecar; the node name on the ring. */
  sidecarId: string;
  /** The sidecar's link listener, `host:port`. */
  address: string;
  /** Relative share of keys, 1..1000. */
  weight: number;
}

/**
 * Picks the endpoint for a connection. Implementations keep one ring per service and are
 * told of changes through `update`; `candidates` gives the order in which to try endpoints
 * when a dial fails (the first is the pick).
 */
export interface Balancer {
  /** Replaces the healthy endpoints of `service` (an empty list removes the service). */
  update(service: string, endpoints: readonly BalancerEndpoint[]): void;
  /** Endpoints of `service` for `key`, best first; empty when the service has none. */
  candidates(service: string, key: string, max?: number): BalancerEndpoint[];
}
