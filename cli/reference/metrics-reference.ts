/**
 * docs/metrics.md, made from the metric definitions themselves: a sidecar's (and gateway's)
 * registry and the control plane's, as built by their metrics adapters.
 */
import type { MetricObject, Registry } from 'prom-client';
import { ControlPlaneMetrics } from '../../control-plane/metrics.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';

/** Node's own process metrics, which prom-client adds under a prefix: listed as one line. */
const PROCESS_METRICS_PREFIX = 'trellis_sidecar_process_';

function table(registry: Registry): string[] {
  const rows = registry
    .getMetricsAsArray()
    .filter((metric) => !metric.name.startsWith(PROCESS_METRICS_PREFIX))
    .sort((a, b) => (a.name < b.name ? -1 : 1))
    .map((metric: MetricObject) => {
      const labels = ((metric as unknown as { labelNames?: string[] }).labelNames ?? []).map((label) => `\`${label}\``).join(', ');
      return `| \`${metric.name}\` | ${String(metric.type)} | ${labels || '—'} | ${metric.help.replaceAll('|', '\\|')} |`;
    });
  return ['| metric | type | labels | meaning |', '| --- | --- | --- | --- |', ...rows];
}

export function renderMetricsReference(): string {
  const sidecar = new PrometheusSidecarMetrics({ service: 'example' });
  const controlPlane = new ControlPlaneMetrics();
  return `${[
    '# Metrics reference',
    '',
    '<!-- Generated from the metric definitions by `npm run docs`; do not edit by hand. -->',
    '',
    'Every process serves Prometheus text at `GET /metrics`: sidecars and gateways on their',
    '`--admin` address (plain HTTP, loopback), the control plane on its HTTPS listener.',
    '',
    '## Sidecars and gateways',
    '',
    'Every sample carries the label `service` (the sidecar\'s service). Node.js process metrics',
    `(CPU, memory, event-loop lag, garbage collection) come too, named \`${PROCESS_METRICS_PREFIX}*\`.`,
    '',
    ...table(sidecar.registry),
    '',
    '## Control plane',
    '',
    ...table(controlPlane.registry),
  ].join('\n')}\n`;
}
