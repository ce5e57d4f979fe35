/**
 * Sends the control plane a compact summary of what this sidecar (or gateway) did, every few
 * seconds, over its channel: read from the sidecar's own metrics, so the report and `/metrics`
 * never disagree. Only a control plane that announced channel version 2 gets reports (see
 * PROTOCOL.md, "Reports"); one of version 1 would close the channel on an unknown message.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { ReportHistogram, ReportMessage, SidecarMessage } from '../../proto/control.js';
import { parseSidecarMessage } from '../../proto/control.js';
import { MAX_REPORT_ENTRIES, MAX_REPORT_ERROR_CODES, MAX_REPORT_FAILURE_CODES, MAX_REPORT_ROUTES, REPORT_HISTOGRAM_BOUNDS_MS, SERVICE_NAME_PATTERN } from '../../proto/control.js';

/** What the reporter needs of the channel (a `ControlSession`). */
export interface ReportChannel {
  readonly connected: boolean;
  /** The interval the control plane asked for; `undefined` when it takes no reports. */
  readonly reportIntervalMs: number | undefined;
  send(message: SidecarMessage): boolean;
  on(event: 'connected' | 'disconnected', listener: () => void): unknown;
}

/** The metrics the report is read from (the prom-client registry of `PrometheusSidecarMetrics`). */
export interface MetricsSource {
  getMetricsAsJSON(): Promise<MetricObjectWithValues<MetricValue<string>>[]>;
}

/** What the report takes from the rest of the sidecar, read at each report. */
export interface ReporterState {
  configVersion(): number;
  certExpiresAt(): number;
  /** `undefined` without health checks. */
  appHealthy(): boolean | undefined;
  /** Whether the last certificate renewal failed and no certificate came since (the renewer's verdict). */
  certRenewalFailing(): boolean;
  /** The services it routes to: upstreams first, then proxy-port destinations in use. */
  routes(): Iterable<string>;
}

export interface ReporterInit {
  channel: ReportChannel;
  metrics: MetricsSource;
  state: ReporterState;
  logger: Logger;
}

/** Reports while the channel is up, at the control plane's interval. */
export class Reporter {
  readonly #init: ReporterInit;
  readonly #software = softwareVersion();
  #timer: NodeJS.Timeout | undefined;
  #sending = false;
  #stopped = false;

  constructor(init: ReporterInit) {
    this.#init = init;
    init.channel.on('connected', () => this.#schedule());
    init.channel.on('disconnected', () => clearInterval(this.#timer));
    if (init.channel.connected) this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  /** The report as it would be sent now. */
  async build(): Promise<ReportMessage> {
    const { metrics, state } = this.#init;
    const read = new MetricReader(await metrics.getMetricsAsJSON());
    const upstreams = [...read.labelValues('trellis_sidecar_upstream_streams_opened_total', 'upstream')]
      .filter(isServiceName)
      .map((service) => ({
        service,
        opened: read.sum('trellis_sidecar_upstream_streams_opened_total', { upstream: service }),
        active: read.sum('trellis_sidecar_upstream_streams_active', { upstream: service }),
        failed: read.byLabel('trellis_sidecar_upstream_stream_failures_total', 'code', { upstream: service }, MAX_REPORT_FAILURE_CODES),
        connectMs: read.histogram('trellis_sidecar_upstream_connect_seconds', { upstream: service }),
        durationMs: read.histogram('trellis_sidecar_upstream_stream_duration_seconds', { upstream: service }),
      }));
    // Failures with no stream ever opened still name a destination worth showing.
    for (const service of read.labelValues('trellis_sidecar_upstream_stream_failures_total', 'upstream')) {
      if (!isServiceName(service) || upstreams.some((u) => u.service === service)) continue;
      const empty = read.histogram('trellis_sidecar_upstream_connect_seconds', { upstream: service });
      upstreams.push({ service, opened: 0, active: 0, failed: read.byLabel('trellis_sidecar_upstream_stream_failures_total', 'code', { upstream: service }, MAX_REPORT_FAILURE_CODES), connectMs: empty, durationMs: empty });
    }
    upstreams.sort((a, b) => b.opened - a.opened || a.service.localeCompare(b.service));
    const appHealthy = state.appHealthy();
    return {
      type: 'report',
      software: this.#software,
      configVersion: state.configVersion(),
      certExpiresAt: Math.max(0, Math.floor(state.certExpiresAt())),
      ...(appHealthy === undefined ? {} : { appHealthy }),
      streamsActive: {
        inbound: read.sum('trellis_sidecar_streams_active', { direction: 'inbound' }),
        outbound: read.sum('trellis_sidecar_streams_active', { direction: 'outbound' }),
      },
      bytes: { in: read.sum('trellis_sidecar_bytes_total', { direction: 'in' }), out: read.sum('trellis_sidecar_bytes_total', { direction: 'out' }) },
      linksActive: read.sum('trellis_sidecar_links_active', {}),
      upstreams: upstreams.slice(0, MAX_REPORT_ENTRIES),
      denials: topCounts(read.byLabel('trellis_sidecar_policy_denials_total', 'source', {}, Infinity))
        .filter(([source]) => isServiceName(source))
        .slice(0, MAX_REPORT_ENTRIES)
        .map(([source, count]) => ({ source, count })),
      errors: read.byLabel('trellis_sidecar_stream_errors_total', 'code', {}, MAX_REPORT_ERROR_CODES),
      peers: read
        .values('trellis_sidecar_link_rtt_seconds')
        .filter((v) => typeof v.labels.peer === 'string' && v.labels.peer.length <= 256)
        .slice(0, MAX_REPORT_ENTRIES)
        .map((v) => ({ peer: String(v.labels.peer), rttMs: Math.min(3_600_000, Math.max(0, v.value * 1000)) })),
      ejections: topCounts(read.byLabel('trellis_sidecar_endpoint_ejections_total', 'upstream', {}, Infinity))
        .filter(([service]) => isServiceName(service))
        .slice(0, MAX_REPORT_ENTRIES)
        .map(([service, count]) => ({ service, count })),
      certRenewalFailing: state.certRenewalFailing(),
      // Upstreams come first, so a cap drops proxy-port destinations before configured routes.
      routes: [...new Set(state.routes())].filter(isServiceName).slice(0, MAX_REPORT_ROUTES),
    };
  }

  #schedule(): void {
    clearInterval(this.#timer);
    const intervalMs = this.#init.channel.reportIntervalMs;
    if (intervalMs === undefined || this.#stopped) return;
    this.#send();
    this.#timer = setInterval(() => this.#send(), intervalMs);
    this.#timer.unref();
  }

  #send(): void {
    // A registry read slower than the interval must not pile reports up.
    if (this.#sending) return;
    this.#sending = true;
    this.build()
      // A report the control plane would refuse would cost the channel: check it here first.
      .then((report) => this.#init.channel.send(parseSidecarMessage(report)))
      .catch((err: unknown) => this.#init.logger.warn({ err: (err as Error).message }, 'cannot build a report'))
      .finally(() => (this.#sending = false));
  }
}

type Labels = Record<string, string | number>;

/** Lookups in prom-client's JSON view of a registry. */
class MetricReader {
  readonly #byName = new Map<string, MetricValue<string>[]>();

  constructor(metrics: MetricObjectWithValues<MetricValue<string>>[]) {
    for (const metric of metrics) this.#byName.set(metric.name, metric.values);
  }

  values(name: string): MetricValue<string>[] {
    return this.#byName.get(name) ?? [];
  }

  labelValues(name: string, label: string): Set<string> {
    const found = new Set<string>();
    for (const v of this.values(name)) if (v.labels[label] !== undefined) found.add(String(v.labels[label]));
    return found;
  }

  sum(name: string, match: Labels, metricName?: string): number {
    let total = 0;
    for (const v of this.values(name)) {
      if (metricName !== undefined && (v as { metricName?: string }).metricName !== metricName) continue;
      if (matches(v.labels, match)) total += v.value;
    }
    return Math.max(0, Math.round(total));
  }

  byLabel(name: string, label: string, match: Labels, max: number): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const v of this.values(name)) {
      const key = v.labels[label];
      if (key === undefined || !matches(v.labels, match)) continue;
      counts[String(key)] = (counts[String(key)] ?? 0) + Math.max(0, Math.round(v.value));
    }
    return Object.fromEntries(topCounts(counts).slice(0, max));
  }

  /** prom-client's cumulative `le` buckets, turned into one count per report bucket. */
  histogram(name: string, match: Labels): ReportHistogram {
    const cumulative = new Map<number, number>();
    let sumSeconds = 0;
    for (const v of this.values(name)) {
      if (!matches(v.labels, match)) continue;
      const metricName = (v as { metricName?: string }).metricName;
      if (metricName === `${name}_sum`) sumSeconds += v.value;
      if (metricName !== `${name}_bucket`) continue;
      const le = v.labels.le === '+Inf' ? Infinity : Number(v.labels.le);
      cumulative.set(le, (cumulative.get(le) ?? 0) + v.value);
    }
    const bounds = [...REPORT_HISTOGRAM_BOUNDS_MS.map((ms) => ms / 1000), Infinity];
    let below = 0;
    const counts = bounds.map((bound) => {
      const atOrBelow = cumulative.get(bound) ?? below;
      const count = Math.max(0, atOrBelow - below);
      below = atOrBelow;
      return count;
    });
    return { counts, sumMs: Math.max(0, sumSeconds * 1000) };
  }
}

function matches(labels: Partial<Record<string, string | number>>, match: Labels): boolean {
  for (const [key, value] of Object.entries(match)) if (labels[key] !== value) return false;
  return true;
}

function topCounts(counts: Record<string, number>): [string, number][] {
  return Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

function isServiceName(name: string): boolean {
  return SERVICE_NAME_PATTERN.test(name);
}

/** The version in package.json, next to the compiled code. */
function softwareVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version.slice(0, 32) : 'unknown';
  } catch {
    return 'unknown';
  }
}
