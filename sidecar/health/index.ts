export type { AppHealth, AppHealthInit, HealthChannel } from './app-health.js';
export { startAppHealthChecks } from './app-health.js';
export type { HealthCheck, HealthCheckOptions } from './health-check.js';
export { DEFAULT_HEALTH_INTERVAL_MS, DEFAULT_HEALTH_TIMEOUT_MS, parseHealthCheck } from './health-check.js';
export { HealthMonitor, HealthVerdict } from './health-monitor.js';
export type { HealthProbe, ProbeResult } from './probes.js';
export { httpProbe, probeFor, tcpProbe } from './probes.js';
