/**
 * The control plane's metrics: the only module that touches prom-client. Each control plane
 * owns its own registry, so several can run in one process (tests) without sharing counters.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** How a join attempt (sidecar or gateway) ended; the label of `trellis_cp_joins_total`. */
export type JoinResult = 'ok' | 'bad_request' | 'bad_token' | 'token_unknown' | 'token_expired' | 'token_used' | 'token_revoked' | 'wrong_service' | 'wrong_kind' | 'bad_csr' | 'revoked' | 'rate_limited' | 'error';

/** What `trellis_cp_push_events_total` counts, by its `event` label. */
export type PushEvent = 'nack' | 'resume-delta' | 'resume-snapshot' | 'coalesced';

/** Live values that gauges read at scrape time instead of being kept up to date. */
export interface GaugeSource {
  sidecarsConnected(): number;
  endpointCounts(): Map<string, number>;
  configVersion(): number;
  /** The last version each connected, registered sidecar acknowledged. */
  ackedVersions(): Iterable<number>;
}

/** Counters and histograms the control plane's modules record into. */
export class ControlPlaneMetrics {
  /** The prom-client registry that `/metrics` serves. */
  readonly registry = new Registry();
  #source: GaugeSource | undefined;
  readonly #joins: Counter<'result'>;
  readonly #certsIssued: Counter<'reason'>;
  readonly #pushMessages: Counter<'type'>;
  readonly #pushBytes: Counter<'type'>;
  readonly #pushLatency: Histogram;
  readonly #httpRequests: Counter<'route' | 'status'>;
  readonly #adminRefusals: Counter<'route' | 'reason'>;
  readonly #pushEvents: Counter<'event'>;

  constructor() {
    const registers = [this.registry];
    const metrics = (): GaugeSource | undefined => this.#source;
    this.#joins = new Counter({ name: 'trellis_cp_joins_total', help: 'Join attempts, by result.', labelNames: ['result'], registers });
    this.#certsIssued = new Counter({ name: 'trellis_cp_certs_issued_total', help: 'Leaf certificates signed, by reason (join, renew).', labelNames: ['reason'], registers });
    this.#pushMessages = new Counter({ name: 'trellis_cp_push_messages_total', help: 'Config messages sent to sidecars, by type.', labelNames: ['type'], registers });
    this.#pushBytes = new Counter({ name: 'trellis_cp_push_bytes_total', help: 'Bytes of config messages sent to sidecars, by type.', labelNames: ['type'], registers });
    this.#pushLatency = new Histogram({
      name: 'trellis_cp_push_latency_seconds',
      help: 'Time from a config change to its delta being handed to every session.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#pushEvents = new Counter({
      name: 'trellis_cp_push_events_total',
      help: 'Push events: nacks received, resumes answered with a delta or a snapshot, changes coalesced for sessions that were behind.',
      labelNames: ['event'],
      registers,
    });
    this.#httpRequests = new Counter({ name: 'trellis_cp_http_requests_total', help: 'REST requests, by route and status.', labelNames: ['route', 'status'], registers });
    this.#adminRefusals = new Counter({
      name: 'trellis_cp_admin_refusals_total',
      help: 'Admin API calls refused for their credentials, by route and reason (missing, malformed, join_token, unknown).',
      labelNames: ['route', 'reason'],
      registers,
    });
    new Gauge({
      name: 'trellis_cp_sidecars_connected',
      help: 'Sidecar sessions currently connected.',
      registers,
      collect() {
        this.set(metrics()?.sidecarsConnected() ?? 0);
      },
    });
    new Gauge({
      name: 'trellis_cp_endpoints',
      help: 'Registered endpoints, by service.',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const [service, count] of metrics()?.endpointCounts() ?? []) this.set({ service }, count);
      },
    });
    new Gauge({
      name: 'trellis_cp_config_version',
      help: 'Current config version.',
      registers,
      collect() {
        this.set(metrics()?.configVersion() ?? 0);
      },
    });
    new Gauge({
      name: 'trellis_cp_config_version_lag_max',
      help: 'Largest gap between the config version and the version a connected sidecar acknowledged.',
      registers,
      collect() {
        const source = metrics();
        const current = source?.configVersion() ?? 0;
        let lag = 0;
        for (const acked of source?.ackedVersions() ?? []) lag = Math.max(lag, current - acked);
        this.set(lag);
      },
    });
    new Gauge({
      name: 'trellis_cp_sidecars_lagging',
      help: 'Connected sidecars that have not acknowledged the current config version.',
      registers,
      collect() {
        const source = metrics();
        const current = source?.configVersion() ?? 0;
        let lagging = 0;
        for (const acked of source?.ackedVersions() ?? []) if (acked < current) lagging++;
        this.set(lagging);
      },
    });
  }

  /** Connects the scrape-time gauges to the live state, once the wiring has built it. */
  setGaugeSource(source: GaugeSource): void {
    this.#source = source;
  }

  joinCompleted(result: JoinResult): void {
    this.#joins.inc({ result });
  }

  certificateIssued(reason: 'join' | 'renew'): void {
    this.#certsIssued.inc({ reason });
  }

  /** One encoded config message sent to `sessions` sessions. */
  configPushed(type: 'snapshot' | 'delta', bytes: number, sessions: number): void {
    this.#pushMessages.inc({ type }, sessions);
    this.#pushBytes.inc({ type }, bytes * sessions);
  }

  /** `count` push events of one kind. */
  pushEvent(event: PushEvent, count = 1): void {
    this.#pushEvents.inc({ event }, count);
  }

  pushLatencyObserved(latencyMs: number): void {
    this.#pushLatency.observe(latencyMs / 1000);
  }

  httpRequest(route: string, status: number): void {
    this.#httpRequests.inc({ route, status: String(status) });
  }

  adminRefused(route: string, reason: string): void {
    this.#adminRefusals.inc({ route, reason });
  }

  /** The metrics in Prometheus text format, and its content type. */
  async render(): Promise<{ contentType: string; text: string }> {
    return { contentType: this.registry.contentType, text: await this.registry.metrics() };
  }
}
