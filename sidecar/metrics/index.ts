export type { SidecarMetrics } from './metrics.js';
export { PrometheusSidecarMetrics } from './prometheus-metrics.js';
