/**
 * The latest report of every connected sidecar and gateway, in memory only: what the dashboard
 * shows of the mesh's traffic. Each sender holds at most two reports (the latest and the one
 * before, for rates), and every report is bounded by its schema, so memory grows with the
 * number of senders and nothing else. A sender's reports go when its session ends.
 */
import type { ReportHistogram, ReportMessage } from '../proto/control.js';
import { REPORT_HISTOGRAM_BOUNDS_MS } from '../proto/control.js';
import type { ChannelIdentity } from './peer-identity.js';

/** One sender's reports. */
export interface SenderReports {
  identity: ChannelIdentity;
  latest: ReportMessage;
  receivedAtMs: number;
  /** The report before the latest, when there was one: rates are the difference. */
  previous?: { report: ReportMessage; receivedAtMs: number };
}

/** Per destination service, summed over every sender that calls it. */
export interface ServiceSignals {
  /** New streams per second over the last report interval. */
  connectionsPerSecond: number;
  opened: number;
  active: number;
  /** Failed streams and refused connections since the senders started, by wire code name. */
  failed: Record<string, number>;
  /** Failures per second over the last report interval. */
  failuresPerSecond: number;
  connectMs: Percentiles;
  durationMs: Percentiles;
  /** Bytes forwarded by the destination's own sidecars (in + out). */
  bytes: number;
  bytesPerSecond: number;
}
export interface Percentiles { p50: number | null; p90: number | null; p99: number | null }
/** Traffic from one service to another, for the graph's edges. */
export interface TrafficEdge { from: string; to: string; connectionsPerSecond: number; opened: number; active: number; failed: number }

/** Keeps the latest reports and sums them up. */
export class ReportStore {
  readonly #bySender = new Map<string, { holder: object; reports: SenderReports }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** Number of senders with a report. */
  get size(): number {
    return this.#bySender.size;
  }

  /** Keeps `report` as the latest of the sender `key`, held by `holder` (its session). */
  record(holder: object, key: string, identity: ChannelIdentity, report: ReportMessage): void {
    const existing = this.#bySender.get(key);
    const receivedAtMs = this.#now();
    const previous = existing === undefined ? undefined : { report: existing.reports.latest, receivedAtMs: existing.reports.receivedAtMs };
    this.#bySender.set(key, { holder, reports: { identity, latest: report, receivedAtMs, ...(previous === undefined ? {} : { previous }) } });
  }

  /** The session that held `key` ended: its reports go (a newer session's stay). */
  forget(holder: object, key: string): void {
    if (this.#bySender.get(key)?.holder === holder) this.#bySender.delete(key);
  }

  /** The reports of every sender. */
  all(): SenderReports[] {
    return [...this.#bySender.values()].map((entry) => entry.reports);
  }

  /** Golden signals per destination service, and the edges between services. */
  traffic(): { services: Record<string, ServiceSignals>; edges: TrafficEdge[] } {
    const services: Record<string, ServiceSignals & { connect: ReportHistogram; duration: ReportHistogram }> = {};
    const edges = new Map<string, TrafficEdge>();
    const signalsOf = (service: string): (typeof services)[string] =>
      (services[service] ??= {
        connectionsPerSecond: 0,
        opened: 0,
        active: 0,
        failed: {},
        failuresPerSecond: 0,
        connectMs: { p50: null, p90: null, p99: null },
        durationMs: { p50: null, p90: null, p99: null },
        bytes: 0,
        bytesPerSecond: 0,
        connect: emptyHistogram(),
        duration: emptyHistogram(),
      });
    for (const { identity, latest, receivedAtMs, previous } of this.all()) {
      const seconds = previous === undefined ? 0 : (receivedAtMs - previous.receivedAtMs) / 1000;
      const rate = (now: number, before: number | undefined): number => (seconds <= 0 || before === undefined || now < before ? 0 : (now - before) / seconds);
      if (identity.kind === 'sidecar') {
        const own = signalsOf(identity.service);
        const bytes = latest.bytes.in + latest.bytes.out;
        own.bytes += bytes;
        own.bytesPerSecond += rate(bytes, previous === undefined ? undefined : previous.report.bytes.in + previous.report.bytes.out);
      }
      for (const upstream of latest.upstreams) {
        const before = previous?.report.upstreams.find((u) => u.service === upstream.service);
        const signals = signalsOf(upstream.service);
        const failedNow = sumValues(upstream.failed);
        const perSecond = rate(upstream.opened, before?.opened);
        signals.connectionsPerSecond += perSecond;
        signals.opened += upstream.opened;
        signals.active += upstream.active;
        signals.failuresPerSecond += rate(failedNow, before === undefined ? undefined : sumValues(before.failed));
        for (const [code, count] of Object.entries(upstream.failed)) signals.failed[code] = (signals.failed[code] ?? 0) + count;
        addInto(signals.connect, upstream.connectMs);
        addInto(signals.duration, upstream.durationMs);
        if (identity.kind !== 'sidecar') continue;
        const edgeKey = `${identity.service}\u0000${upstream.service}`;
        const edge = edges.get(edgeKey) ?? { from: identity.service, to: upstream.service, connectionsPerSecond: 0, opened: 0, active: 0, failed: 0 };
        edge.connectionsPerSecond += perSecond;
        edge.opened += upstream.opened;
        edge.active += upstream.active;
        edge.failed += failedNow;
        edges.set(edgeKey, edge);
      }
    }
    const result: Record<string, ServiceSignals> = {};
    for (const [service, { connect, duration, ...signals }] of Object.entries(services)) {
      result[service] = { ...signals, connectMs: percentilesOf(connect), durationMs: percentilesOf(duration) };
    }
    return { services: result, edges: [...edges.values()] };
  }
}

function emptyHistogram(): ReportHistogram {
  return { counts: new Array<number>(REPORT_HISTOGRAM_BOUNDS_MS.length + 1).fill(0), sumMs: 0 };
}

function addInto(total: ReportHistogram, more: ReportHistogram): void {
  more.counts.forEach((count, i) => (total.counts[i] = (total.counts[i] ?? 0) + count));
  total.sumMs += more.sumMs;
}

function sumValues(counts: Record<string, number>): number {
  let total = 0;
  for (const count of Object.values(counts)) total += count;
  return total;
}

/**
 * Percentiles by linear interpolation inside the bucket that holds them (as Prometheus's
 * histogram_quantile); the open top bucket answers with its lower bound.
 */
export function percentilesOf(histogram: ReportHistogram): Percentiles {
  const total = histogram.counts.reduce((a, b) => a + b, 0);
  const at = (q: number): number | null => {
    if (total === 0) return null;
    const rank = q * total;
    let below = 0;
    for (let i = 0; i < histogram.counts.length; i++) {
      const count = histogram.counts[i] ?? 0;
      if (below + count >= rank && count > 0) {
        const lower = i === 0 ? 0 : (REPORT_HISTOGRAM_BOUNDS_MS[i - 1] ?? 0);
        const upper = REPORT_HISTOGRAM_BOUNDS_MS[i];
        if (upper === undefined) return lower;
        return lower + ((upper - lower) * (rank - below)) / count;
      }
      below += count;
    }
    return REPORT_HISTOGRAM_BOUNDS_MS[REPORT_HISTOGRAM_BOUNDS_MS.length - 1] ?? null;
  };
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}
