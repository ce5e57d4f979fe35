import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REPORT_HISTOGRAM_BOUNDS_MS } from '../../proto/control.js';
import type { SidecarMetrics } from './metrics.js';

/** Most destinations with series of their own in the per-destination metrics. */
export const MAX_UPSTREAM_LABELS = 256;
/** The label of every destination beyond {@link MAX_UPSTREAM_LABELS} (not a service name, so reports leave it out). */
export const OTHER_UPSTREAMS = '(other)';

/** Sidecar metrics in a prom-client registry of their own (one per sidecar, never global). */
export class PrometheusSidecarMetrics implements SidecarMetrics {
  readonly registry = new Registry();
  /**
   * Bytes counted since the last scrape. The hot path adds to plain numbers; the counter
   * takes them when scraped. (A prom-client child counter hashes and validates its labels on
   * every `inc`, once per forwarded chunk: 5 % of a sidecar's allocations under a
   * one-connection request load.)
   */
  #unscrapedBytesIn = 0;
  #unscrapedBytesOut = 0;
  readonly #streamsOpened: Counter<'direction'>;
  readonly #streamsActive: Gauge<'direction'>;
  readonly #streamErrors: Counter<'code'>;
  readonly #policyDenials: Counter<'source' | 'destination'>;
  readonly #dialSeconds: Histogram<'result'>;
  readonly #linkRttSeconds: Gauge<'peer'>;
  readonly #linksActive: Gauge;
  readonly #protocolViolations: Counter<'code'>;
  readonly #endpointEjections: Counter<'upstream'>;
  readonly #boundedLoadSkips: Counter<'upstream'>;
  readonly #idleStreamResets: Counter;
  readonly #certExpiry: Gauge;
  readonly #certRenewalFailures: Counter;
  readonly #certRenewals: Counter;
  readonly #proxyRefusals: Counter<'reason'>;
  readonly #tunnelRefusals: Counter<'reason'>;
  readonly #linkRefusals: Counter<'reason'>;
  readonly #linkReadPauses: Counter;
  readonly #streamRefusals: Counter<'reason'>;
  readonly #tunnelsActive: Gauge<'role'>;
  readonly #tunnelsOpened: Counter<'role'>;
  readonly #configVersion: Gauge;
  readonly #upstreamStreamsOpened: Counter<'upstream'>;
  readonly #upstreamStreamsActive: Gauge<'upstream'>;
  readonly #upstreamStreamFailures: Counter<'upstream' | 'code'>;
  readonly #upstreamStreamRetries: Counter<'upstream'>;
  readonly #upstreamConnectSeconds: Histogram<'upstream'>;
  readonly #upstreamStreamSeconds: Histogram<'upstream'>;
  /** Destinations with series of their own; the proxy port lets apps name any, so they are capped. */
  readonly #upstreamLabels = new Set<string>();

  constructor(labels: { service: string; sidecarId?: string }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ service: labels.service });
    collectDefaultMetrics({ register: this.registry, prefix: 'trellis_sidecar_process_' });
    const takeUnscrapedBytes = (): { in: number; out: number } => {
      const taken = { in: this.#unscrapedBytesIn, out: this.#unscrapedBytesOut };
      this.#unscrapedBytesIn = 0;
      this.#unscrapedBytesOut = 0;
      return taken;
    };
    new Counter({
      name: 'trellis_sidecar_bytes_total',
      help: 'Payload bytes forwarded, by direction (out: from the local app, in: to it).',
      labelNames: ['direction'],
      registers,
      collect() {
        const taken = takeUnscrapedBytes();
        // Both series exist from the first scrape, at 0 until bytes flow.
        this.inc({ direction: 'in' }, taken.in);
        this.inc({ direction: 'out' }, taken.out);
      },
    });
    this.#streamsOpened = new Counter({
      name: 'trellis_sidecar_streams_opened_total',
      help: 'Streams opened, by direction.',
      labelNames: ['direction'],
      registers,
    });
    this.#streamsActive = new Gauge({
      name: 'trellis_sidecar_streams_active',
      help: 'Streams open now, by direction.',
      labelNames: ['direction'],
      registers,
    });
    this.#streamErrors = new Counter({
      name: 'trellis_sidecar_stream_errors_total',
      help: 'Streams that ended with an error, by wire error code.',
      labelNames: ['code'],
      registers,
    });
    this.#policyDenials = new Counter({
      name: 'trellis_sidecar_policy_denials_total',
      help: 'Inbound streams refused by the authorization policy (or open ones it reset), by source and destination service.',
      labelNames: ['source', 'destination'],
      registers,
    });
    this.#dialSeconds = new Histogram({
      name: 'trellis_sidecar_link_dial_seconds',
      help: 'Time to dial a link to another sidecar (TCP + TLS), by result.',
      labelNames: ['result'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.#linkRttSeconds = new Gauge({
      name: 'trellis_sidecar_link_rtt_seconds',
      help: 'Last measured round-trip time of each link, by peer address.',
      labelNames: ['peer'],
      // Merged across forwarding workers by the highest value, not the sum.
      aggregator: 'max',
      registers,
    });
    this.#linksActive = new Gauge({ name: 'trellis_sidecar_links_active', help: 'Links open now.', registers });
    this.#protocolViolations = new Counter({
      name: 'trellis_sidecar_protocol_violations_total',
      help: 'Links closed because the peer broke the protocol, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.#endpointEjections = new Counter({
      name: 'trellis_sidecar_endpoint_ejections_total',
      help: 'Endpoints taken out of rotation after consecutive failures, by upstream service.',
      labelNames: ['upstream'],
      registers,
    });
    this.#boundedLoadSkips = new Counter({
      name: 'trellis_sidecar_bounded_load_skips_total',
      help: 'Endpoints passed over because they were above their load bound, by upstream service.',
      labelNames: ['upstream'],
      registers,
    });
    this.#idleStreamResets = new Counter({
      name: 'trellis_sidecar_idle_stream_resets_total',
      help: 'Outbound streams reset because no bytes crossed them for the idle timeout.',
      registers,
    });
    this.#proxyRefusals = new Counter({
      name: 'trellis_sidecar_proxy_refusals_total',
      help: 'Clients of the proxy port turned away, by reason (not-mesh, socks4, bad-handshake, no-route).',
      labelNames: ['reason'],
      registers,
    });
    this.#tunnelRefusals = new Counter({
      name: 'trellis_tunnel_refusals_total',
      help: 'Tunnels refused here, by reason (not-published, wrong-hop, wrong-previous-hop, wrong-zone, wrong-target, unknown-target, next-hop-unreachable, not-a-sidecar, handshake, plain-stream, revoked).',
      labelNames: ['reason'],
      registers,
    });
    // No sidecar_ prefix: gateways count the same refusals at their listeners.
    this.#linkReadPauses = new Counter({
      name: 'trellis_link_read_pauses_total',
      help: 'Times a link stopped reading because its peer had more streams refused at open than the refusal budget allows (an OPEN flood).',
      registers,
    });
    this.#linkRefusals = new Counter({
      name: 'trellis_link_refusals_total',
      help: 'Connections to a link listener refused or closed before they became links, by reason (handshake-timeout, handshake-failed, no-mesh-identity, too-many-pending, too-many-pending-from-source, too-many-links, too-many-links-from-peer, revoked).',
      labelNames: ['reason'],
      registers,
    });
    this.#streamRefusals = new Counter({
      name: 'trellis_sidecar_stream_refusals_total',
      help: 'Inbound streams refused with RESOURCE_EXHAUSTED by a stream quota, by reason (too-many-streams, too-many-streams-from-peer).',
      labelNames: ['reason'],
      registers,
    });
    this.#tunnelsActive = new Gauge({
      name: 'trellis_tunnels_active',
      help: 'Tunnel streams open now, by role (relay: spliced at a gateway).',
      labelNames: ['role'],
      registers,
    });
    this.#tunnelsOpened = new Counter({
      name: 'trellis_tunnels_opened_total',
      help: 'Tunnel streams opened, by role.',
      labelNames: ['role'],
      registers,
    });
    this.#certExpiry = new Gauge({
      name: 'trellis_sidecar_cert_expiry_timestamp_seconds',
      help: 'When the sidecar certificate expires (Unix seconds).',
      // Merged across forwarding workers by the highest value, not the sum.
      aggregator: 'max',
      registers,
    });
    // The buckets of the control plane's reports, so that a report reads these histograms as they are.
    const reportBuckets = REPORT_HISTOGRAM_BOUNDS_MS.map((ms) => ms / 1000);
    this.#upstreamStreamsOpened = new Counter({
      name: 'trellis_sidecar_upstream_streams_opened_total',
      help: 'Outbound streams opened, by destination service.',
      labelNames: ['upstream'],
      registers,
    });
    this.#upstreamStreamsActive = new Gauge({
      name: 'trellis_sidecar_upstream_streams_active',
      help: 'Outbound streams open now, by destination service.',
      labelNames: ['upstream'],
      registers,
    });
    this.#upstreamStreamFailures = new Counter({
      name: 'trellis_sidecar_upstream_stream_failures_total',
      help: 'Connections to a destination service that got no stream, or whose stream was reset, by destination and wire error code.',
      labelNames: ['upstream', 'code'],
      registers,
    });
    this.#upstreamStreamRetries = new Counter({
      name: 'trellis_sidecar_upstream_stream_retries_total',
      help: 'Connections whose stream a draining endpoint refused at open (RESET GOING_AWAY: no byte reached its app), sent with the same bytes to another endpoint, by destination service.',
      labelNames: ['upstream'],
      registers,
    });
    this.#upstreamConnectSeconds = new Histogram({
      name: 'trellis_sidecar_upstream_connect_seconds',
      help: 'Time from accepting a connection to its stream being open (pick, link dial if needed, OPEN), by destination service.',
      labelNames: ['upstream'],
      buckets: reportBuckets,
      registers,
    });
    this.#upstreamStreamSeconds = new Histogram({
      name: 'trellis_sidecar_upstream_stream_duration_seconds',
      help: 'How long outbound streams stayed open, by destination service.',
      labelNames: ['upstream'],
      buckets: reportBuckets,
      registers,
    });
    this.#certRenewalFailures = new Counter({
      name: 'trellis_sidecar_cert_renewal_failures_total',
      help: 'Certificate renewals that got no certificate (control plane away, refused, or no answer in time).',
      registers,
    });
    this.#certRenewals = new Counter({
      name: 'trellis_sidecar_cert_renewals_total',
      help: 'Renewed certificates received.',
      registers,
    });
    this.#configVersion = new Gauge({
      name: 'trellis_sidecar_config_version',
      help: 'Version of the mesh configuration this sidecar applies.',
      // Merged across forwarding workers by the highest value, not the sum.
      aggregator: 'max',
      registers,
    });
  }

  bytes(direction: 'in' | 'out', count: number): void {
    if (direction === 'in') this.#unscrapedBytesIn += count;
    else this.#unscrapedBytesOut += count;
  }
  streamOpened(direction: 'inbound' | 'outbound'): void {
    this.#streamsOpened.inc({ direction });
    this.#streamsActive.inc({ direction });
  }
  streamClosed(direction: 'inbound' | 'outbound'): void {
    this.#streamsActive.dec({ direction });
  }
  streamError(codeName: string): void {
    this.#streamErrors.inc({ code: codeName });
  }
  policyDenied(source: string, destination: string): void {
    this.#policyDenials.inc({ source, destination });
  }
  linkDialed(durationSeconds: number, ok: boolean): void {
    this.#dialSeconds.observe({ result: ok ? 'ok' : 'error' }, durationSeconds);
  }
  linkRtt(peer: string, rttMs: number): void {
    this.#linkRttSeconds.set({ peer }, rttMs / 1000);
  }
  linkOpened(): void {
    this.#linksActive.inc();
  }
  linkClosed(): void {
    this.#linksActive.dec();
  }
  protocolViolation(code: string): void {
    this.#protocolViolations.inc({ code });
  }
  endpointEjected(service: string): void {
    this.#endpointEjections.inc({ upstream: service });
  }
  boundedLoadSkipped(service: string): void {
    this.#boundedLoadSkips.inc({ upstream: service });
  }
  idleStreamReset(): void {
    this.#idleStreamResets.inc();
  }
  proxyRefused(reason: string): void {
    this.#proxyRefusals.inc({ reason });
  }
  tunnelRefused(reason: string): void {
    this.#tunnelRefusals.inc({ reason });
  }
  linkRefused(reason: string): void {
    this.#linkRefusals.inc({ reason });
  }
  linkReadPaused(): void {
    this.#linkReadPauses.inc();
  }
  streamRefused(reason: string): void {
    this.#streamRefusals.inc({ reason });
  }
  tunnelOpened(role: 'relay'): void {
    this.#tunnelsOpened.inc({ role });
    this.#tunnelsActive.inc({ role });
  }
  tunnelClosed(role: 'relay'): void {
    this.#tunnelsActive.dec({ role });
  }
  upstreamStreamOpened(destination: string, connectSeconds: number): void {
    const upstream = this.#upstreamLabel(destination);
    this.#upstreamStreamsOpened.inc({ upstream });
    this.#upstreamStreamsActive.inc({ upstream });
    this.#upstreamConnectSeconds.observe({ upstream }, connectSeconds);
  }
  upstreamStreamClosed(destination: string, durationSeconds: number): void {
    const upstream = this.#upstreamLabel(destination);
    this.#upstreamStreamsActive.dec({ upstream });
    this.#upstreamStreamSeconds.observe({ upstream }, durationSeconds);
  }
  upstreamStreamFailed(destination: string, codeName: string): void {
    this.#upstreamStreamFailures.inc({ upstream: this.#upstreamLabel(destination), code: codeName });
  }
  upstreamStreamRetried(destination: string): void {
    this.#upstreamStreamRetries.inc({ upstream: this.#upstreamLabel(destination) });
  }
  /** The destination's own label while there are fewer than {@link MAX_UPSTREAM_LABELS}, then `(other)`. */
  #upstreamLabel(destination: string): string {
    if (this.#upstreamLabels.has(destination)) return destination;
    if (this.#upstreamLabels.size >= MAX_UPSTREAM_LABELS) return OTHER_UPSTREAMS;
    this.#upstreamLabels.add(destination);
    return destination;
  }
  certExpiry(expiresAtMs: number): void {
    this.#certExpiry.set(Math.floor(expiresAtMs / 1000));
  }
  certRenewalFailed(): void {
    this.#certRenewalFailures.inc();
  }
  certRenewed(): void {
    this.#certRenewals.inc();
  }
  configVersion(version: number): void {
    this.#configVersion.set(version);
  }
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
