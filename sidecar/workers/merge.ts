import { AggregatorRegistry } from 'prom-client';
import type { Registry } from 'prom-client';
import type { EndpointStats } from '../balancer/index.js';
import type { DataPlaneStatus } from '../data-plane.js';
import type { MetricsJson, WorkerSummary } from './messages.js';

/**
 * One registry with the primary's metrics and every worker's: counters and histograms add up;
 * gauges by their `aggregator` (sum unless the metric says otherwise).
 */
export function mergeMetrics(primary: MetricsJson, workers: readonly WorkerSummary[]): Registry {
  return AggregatorRegistry.aggregate([primary, ...workers.map((worker) => worker.metrics)]);
}

/** The workers' data-plane status as one: links add up, load adds up per endpoint, the lowest RTT per gateway. */
export function mergeStatus(workers: readonly WorkerSummary[]): DataPlaneStatus {
  const gatewayRtts: Record<string, number> = {};
  const load: Record<string, Map<string, EndpointStats>> = {};
  for (const { status } of workers) {
    for (const [gateway, rttMs] of Object.entries(status.gatewayRtts)) gatewayRtts[gateway] = Math.min(gatewayRtts[gateway] ?? Infinity, rttMs);
    for (const [service, endpoints] of Object.entries(status.load)) {
      const merged = (load[service] ??= new Map());
      for (const endpoint of endpoints) {
        const seen = merged.get(endpoint.sidecarId);
        merged.set(
          endpoint.sidecarId,
          seen === undefined
            ? { ...endpoint }
            : { sidecarId: endpoint.sidecarId, activeStreams: seen.activeStreams + endpoint.activeStreams, failureStreak: Math.max(seen.failureStreak, endpoint.failureStreak), ejected: seen.ejected || endpoint.ejected },
        );
      }
    }
  }
  return {
    outboundLinks: sum(workers.map((worker) => worker.status.outboundLinks)),
    gatewayLinks: sum(workers.map((worker) => worker.status.gatewayLinks)),
    gatewayRtts,
    load: Object.fromEntries(Object.entries(load).map(([service, endpoints]) => [service, [...endpoints.values()]])),
    workers: workers.map((worker) => ({
      index: worker.index,
      pid: worker.pid,
      outboundLinks: worker.status.outboundLinks,
      gatewayLinks: worker.status.gatewayLinks,
      streamsActive: { inbound: gaugeValue(worker.metrics, 'trellis_sidecar_streams_active', 'direction', 'inbound'), outbound: gaugeValue(worker.metrics, 'trellis_sidecar_streams_active', 'direction', 'outbound') },
    })),
  };
}

function gaugeValue(metrics: MetricsJson, name: string, label: string, value: string): number {
  const metric = metrics.find((candidate) => candidate.name === name);
  return sum((metric?.values ?? []).filter((sample) => sample.labels[label] === value).map((sample) => sample.value));
}

function sum(values: readonly number[]): number {
  return values.reduce((total, value) => total + value, 0);
}
