export type { Balancer, BalancerEndpoint } from './balancer.js';
export { HashRingBalancer } from './hash-ring-balancer.js';
