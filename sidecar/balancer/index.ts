export type { BalancingOptions } from './balancing-options.js';
export type { Balancer, BalancerEndpoint, BalancerObserver, PickRefusal, PickResult, StreamLease } from './balancer.js';
export { DEFAULT_LOAD_FACTOR, loadBound } from './bounded-load.js';
export type { EjectionOptions } from './ejection.js';
export { DEFAULT_EJECTION } from './ejection.js';
export type { ConnectionSource, HashPolicy } from './hash-policy.js';
export { DEFAULT_HASH_POLICY, formatHashPolicy, hashKeyOf, parseHashPolicy } from './hash-policy.js';
export type { EndpointStats, HashRingBalancerInit } from './hash-ring-balancer.js';
export { HashRingBalancer } from './hash-ring-balancer.js';
