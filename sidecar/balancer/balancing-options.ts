import type { HashPolicy } from './hash-policy.js';
import type { HashRingBalancerInit } from './hash-ring-balancer.js';

/** How a sidecar spreads its outbound connections: the operator's settings, from the flags. */
export interface BalancingOptions extends Pick<HashRingBalancerInit, 'loadFactor' | 'maxStreamsPerEndpoint' | 'ejection'> {
  /** The hash policy per destination service; services without one use source-ip-port. */
  hashPolicies?: ReadonlyMap<string, HashPolicy>;
}
