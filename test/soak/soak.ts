// A soak run: steady mixed traffic with connection churn through a live mesh, config pushes,
// certificate renewals (short leaf TTL) and periodic restarts of one sidecar, with every process
// sampled all along. It fails if a process's memory, fds, event-loop delay or streams trend
// upward beyond noise, or if a stream broke the byte-exact promise.
import type { StreamTally } from '../chaos/accounting.js';
import { isAcceptable, isKnownLimit, judgeStreams, tally } from '../chaos/accounting.js';
import { delay } from '../chaos/faults.js';
import type { EchoService, Role } from '../chaos/mesh.js';
import { ChaosMesh } from '../chaos/mesh.js';
import type { ClientRecord } from '../chaos/traffic.js';
import type { Sample, SeriesName } from './sampler.js';
import { SERIES, sampleRole } from './sampler.js';
import type { Trend } from './trend.js';
import { afterWarmUp, fitLine, trendsUp, windowMinima } from './trend.js';

export interface SoakOptions {
  readonly minutes: number;
  /** @default 5000 */
  readonly sampleEveryMs?: number;
  /** Zone b behind gateways too. */
  readonly gateways: boolean;
  /** The server sidecar of echo-a is SIGKILLed and restarted this often. @default 60000 */
  readonly restartEveryMs?: number;
  /** A policy is set or removed this often. @default 10000 */
  readonly pushEveryMs?: number;
  /** The control plane's leaf certificate TTL; renewed at half-life. @default 1m */
  readonly certTtl?: string;
  /** The first share of the run is not fitted. @default 0.3 */
  readonly warmUpShare?: number;
  /** Upward slopes below these (units per minute) pass whatever their significance. */
  readonly floors?: Partial<Record<SeriesName, number>>;
  readonly log?: (line: string) => void;
}

/** Generous on purpose: the machine is shared, and a short run still warms up. */
export const DEFAULT_FLOORS: Readonly<Record<SeriesName, number>> = { rssMiB: 2, heapMiB: 2, fds: 0.5, loopDelayP99Ms: 5, streams: 0.5 };

/** The fitted line goes through the lowest sample of each of this many windows of the run. */
const FIT_WINDOWS = 8;

/** The role restarted periodically: its series are not fitted (each restart starts them afresh). */
export const RESTARTED_ROLE: Role = 'server-a';

export interface TrendRow {
  readonly role: Role;
  readonly series: SeriesName;
  readonly trend: Trend;
  readonly floorPerMinute: number;
  readonly up: boolean;
}

export interface SoakResult {
  readonly options: SoakOptions;
  readonly samples: Sample[];
  readonly trends: TrendRow[];
  readonly streams: StreamTally;
  readonly pushes: { ok: number; failed: number };
  readonly restarts: number;
  /** Certificate renewals seen per role (a change of the expiry in /status within one process). */
  readonly renewals: Partial<Record<Role, number>>;
  /** CPU seconds per role over the run (all of a restarted role's processes). */
  readonly cpuSeconds: Partial<Record<Role, number>>;
  readonly problems: string[];
  readonly wallMs: number;
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? ((): void => undefined);
  const startedAt = Date.now();
  const durationMs = options.minutes * 60_000;
  const sampleEveryMs = options.sampleEveryMs ?? 5_000;
  const mesh = await ChaosMesh.start({ gateways: options.gateways, certTtl: options.certTtl ?? '1m' });
  const samples: Sample[] = [];
  const problems: string[] = [];
  const pushes = { ok: 0, failed: 0 };
  let restarts = 0;
  const killTimes: number[] = [];
  try {
    const runStart = Date.now();
    const services: EchoService[] = options.gateways ? ['echo-a', 'echo-b'] : ['echo-a'];
    const traffic = services.map((service) =>
      mesh.startTraffic(service, { durationMs, bulk: 1, bulkBytes: 1024 * 1024, bulkGapMs: 500, short: 2, shortGapMs: 100, idle: 4, maxStreams: 1_000_000 }),
    );
    const stopAt = runStart + durationMs;
    const minutesNow = (): number => (Date.now() - runStart) / 60_000;
    const sampling = (async () => {
      while (Date.now() < stopAt) {
        const at = minutesNow();
        for (const role of mesh.roles()) {
          const sample = await sampleRole(mesh, role, at).catch(() => undefined);
          if (sample !== undefined) samples.push(sample);
        }
        log(`soak: ${at.toFixed(1)} min, ${samples.length} samples`);
        await delay(Math.max(0, sampleEveryMs - (Date.now() - runStart - at * 60_000)));
      }
    })();
    const pushing = (async () => {
      for (let round = 0; Date.now() < stopAt - 1_000; round++) {
        await delay(options.pushEveryMs ?? 10_000);
        // Set and remove the same rule in turn, so the config changes but does not grow.
        const args = round % 2 === 0 ? ['policy', 'deny', '--from', 'soak-probe', '--to', 'echo-a'] : ['policy', 'remove', '--from', 'soak-probe', '--to', 'echo-a'];
        const result = await mesh.trellisInCp(args);
        if (result.exitCode === 0) pushes.ok += 1;
        else {
          pushes.failed += 1;
          problems.push(`config push ${args.join(' ')} failed: ${result.stderr.trim().split('\n')[0] ?? ''}`);
        }
      }
    })();
    const restarting = (async () => {
      const everyMs = options.restartEveryMs ?? 60_000;
      while (Date.now() + everyMs < stopAt - 5_000) {
        await delay(everyMs);
        killTimes.push(Date.now());
        await mesh.kill(RESTARTED_ROLE);
        await mesh.restart(RESTARTED_ROLE);
        restarts += 1;
        log(`soak: restarted ${RESTARTED_ROLE} (${restarts})`);
      }
    })();
    await Promise.all([sampling, pushing, restarting]);
    await Promise.all(traffic.map((proc) => proc.waitForOutput(/"event":"done"/, 120_000)));
    await delay(2_000);
    const clients = traffic.flatMap((proc) => proc.lines<ClientRecord & { event: string }>()).filter((line): line is ClientRecord => line.event === 'stream');
    // Every restart of the server sidecar may end its streams with a FIN at the server app (a known limit, see accounting.ts).
    const judged = judgeStreams(clients, mesh.serverRecords(), killTimes.map((at) => ({ side: 'server' as const, at })));
    const streams = tally(judged);
    for (const stream of judged.filter((entry) => !isAcceptable(entry.verdict) && !isKnownLimit(entry.verdict)).slice(0, 5)) {
      problems.push(`${stream.verdict} ${stream.client.kind} stream: ${JSON.stringify({ outcome: stream.client.outcome, sent: stream.client.sent, received: stream.client.received })}`);
    }
    if (streams.untold > 5) problems.push(`… ${streams.untold} streams broke the promise in all`);
    if ((streams.byVerdict.whole ?? 0) === 0) problems.push('no stream arrived whole');
    const trends = fitTrends(samples, options);
    for (const row of trends.filter((entry) => entry.up)) {
      problems.push(`${row.role} ${row.series} trends up: ${row.trend.slopePerMinute.toFixed(3)}/min ± ${row.trend.standardError.toFixed(3)} (floor ${row.floorPerMinute}/min)`);
    }
    const renewals = countRenewals(samples);
    for (const role of mesh.roles().filter((r) => r !== 'cp' && r !== RESTARTED_ROLE)) {
      if (options.minutes >= 1.5 && (renewals[role] ?? 0) === 0) problems.push(`${role} renewed no certificate with a ${options.certTtl ?? '1m'} TTL`);
    }
    return { options, samples, trends, streams, pushes, restarts, renewals, cpuSeconds: cpuPerRole(samples), problems, wallMs: Date.now() - startedAt };
  } finally {
    await mesh.stop();
  }
}

function fitTrends(samples: readonly Sample[], options: SoakOptions): TrendRow[] {
  const rows: TrendRow[] = [];
  const roles = [...new Set(samples.map((sample) => sample.role))].filter((role) => role !== RESTARTED_ROLE);
  for (const role of roles) {
    const own = samples.filter((sample) => sample.role === role);
    for (const series of SERIES) {
      const points = own.filter((sample) => sample.values[series] !== undefined).map((sample) => ({ minutes: sample.minutes, value: sample.values[series] ?? 0 }));
      if (points.length === 0) continue;
      const trend = fitLine(windowMinima(afterWarmUp(points, options.warmUpShare ?? 0.3), FIT_WINDOWS));
      const floorPerMinute = options.floors?.[series] ?? DEFAULT_FLOORS[series];
      rows.push({ role, series, trend, floorPerMinute, up: trendsUp(trend, floorPerMinute) });
    }
  }
  return rows;
}

function countRenewals(samples: readonly Sample[]): Partial<Record<Role, number>> {
  const renewals: Partial<Record<Role, number>> = {};
  const last = new Map<string, string>();
  for (const sample of samples) {
    if (sample.certExpiresAt === undefined) continue;
    const key = `${sample.role}/${sample.pid}`;
    const previous = last.get(key);
    if (previous !== undefined && previous !== sample.certExpiresAt) renewals[sample.role] = (renewals[sample.role] ?? 0) + 1;
    last.set(key, sample.certExpiresAt);
  }
  return renewals;
}

function cpuPerRole(samples: readonly Sample[]): Partial<Record<Role, number>> {
  const lastByPid = new Map<number, Sample>();
  for (const sample of samples) lastByPid.set(sample.pid, sample);
  const cpu: Partial<Record<Role, number>> = {};
  for (const sample of lastByPid.values()) cpu[sample.role] = (cpu[sample.role] ?? 0) + sample.cpuSeconds;
  return cpu;
}
