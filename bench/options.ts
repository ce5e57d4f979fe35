/** Command-line options of `npm run bench` and the sizes of a full and a quick run. */
import { parseArgs } from 'node:util';
import type { ContenderId, WorkloadId } from './results.js';
import { CONTENDER_IDS, WORKLOAD_IDS } from './results.js';

/** How much work each workload does; every loop of the harness is bounded by these. */
export interface BenchSizes {
  /**
   * Rounds of the data-path workloads (bulk, rr50, rr1, churn), contenders taking turns; each
   * figure is the median. Load from elsewhere on a shared machine comes and goes, and this
   * spreads it over the contenders.
   */
  repeats: number;
  /** iperf3 test length. */
  bulkSeconds: number;
  /** Bytes echoed, alone and beside a stalled connection (head-of-line workload). */
  holBytes: number;
  /** redis-benchmark `-n` per command (SET and GET) with 50 connections. */
  rr50Requests: number;
  /** redis-benchmark `-n` for GET over one connection. */
  rr1Requests: number;
  /** redis-benchmark `-n` for PING_INLINE with a new connection per request. */
  churnRequests: number;
  /** Concurrent connections held through one proxy pair. */
  streams: number;
  /** Bytes each held connection sends and gets echoed. */
  streamPayloadBytes: number;
  /** Wait after the one connection before idle memory is read. */
  idleSettleSeconds: number;
  /** Simulated sidecars per control-plane run, one run per entry. */
  controlPlaneSidecars: number[];
  /** Policy changes timed per control-plane run. */
  policyRounds: number;
  /** Time spent in each micro-benchmark case. */
  microSeconds: number;
}

export const FULL_SIZES: BenchSizes = {
  repeats: 3,
  bulkSeconds: 5,
  holBytes: 256 * 1024 * 1024,
  rr50Requests: 100_000,
  rr1Requests: 20_000,
  churnRequests: 10_000,
  streams: 10_000,
  streamPayloadBytes: 1024,
  idleSettleSeconds: 5,
  controlPlaneSidecars: [1_000, 5_000, 10_000],
  policyRounds: 3,
  microSeconds: 1,
};

/** About two minutes in all: a first look, with figures noisier than a full run's. */
export const QUICK_SIZES: BenchSizes = {
  repeats: 1,
  bulkSeconds: 2,
  holBytes: 64 * 1024 * 1024,
  rr50Requests: 20_000,
  rr1Requests: 5_000,
  churnRequests: 2_000,
  streams: 2_000,
  streamPayloadBytes: 1024,
  idleSettleSeconds: 2,
  controlPlaneSidecars: [500],
  policyRounds: 2,
  microSeconds: 0.5,
};

/** Small enough for a test (`--quick --tiny`), large enough that every code path runs. */
export const TINY_SIZES: BenchSizes = {
  repeats: 1,
  bulkSeconds: 1,
  holBytes: 8 * 1024 * 1024,
  rr50Requests: 2_000,
  rr1Requests: 500,
  churnRequests: 300,
  streams: 200,
  streamPayloadBytes: 1024,
  idleSettleSeconds: 1,
  controlPlaneSidecars: [50],
  policyRounds: 1,
  microSeconds: 0.2,
};

export type SizesName = 'full' | 'quick' | 'tiny';

/**
 * The workloads of a long-lived round, in the order each round runs them: what a sidecar
 * that lives for days sees, many connections, then one, then churn, then bulk.
 */
export const LONG_LIVED_WORKLOADS: readonly WorkloadId[] = ['rr50', 'rr1', 'churn', 'bulk'];
export const DEFAULT_LONG_LIVED_ROUNDS = 3;
const MAX_ROUNDS = 100;
/** An hour: a bound on one control-plane size that still catches a typo in minutes. */
const MAX_CP_DEADLINE_SECONDS = 3_600;
/** As `trellis sidecar --workers`. */
const MAX_SIDECAR_WORKERS = 64;
/** A bound on `--cp-sidecars` that still lets a typo fail fast rather than join for hours. */
const MAX_CP_SIDECARS = 100_000;

export interface BenchOptions {
  mode: 'full' | 'quick';
  sizesName: SizesName;
  sizes: BenchSizes;
  workloads: WorkloadId[];
  contenders: ContenderId[];
  /**
   * Rounds of the long-lived mode (one pair per contender for the whole run, every round the
   * workloads of {@link LONG_LIVED_WORKLOADS} in turn), or undefined for fresh pairs.
   */
  longLivedRounds: number | undefined;
  /** Each control-plane size (1,000 / 5,000 / 10,000 sidecars) stops after this and reports what it reached. */
  cpDeadlineSeconds: number | undefined;
  /** Directory the JSON and markdown results go to. */
  outDir: string;
  /** `--workers` of the Trellis sidecars (1: forwarding in the sidecar's own process). */
  sidecarWorkers: number;
}

export const USAGE = `usage: npm run bench -- [--quick [--tiny]] [--long-lived [--rounds N]] [--only WORKLOAD,...] [--contenders CONTENDER,...] [--cp-sidecars N,...] [--cp-deadline SECONDS] [--sidecar-workers N] [--out DIR]
  --quick          small sizes (about two minutes)
  --tiny           with --quick: the smallest sizes, for the harness's own test
  --long-lived     one pair per contender for the whole run; each round runs ${LONG_LIVED_WORKLOADS.join(', ')}
                   in turn on it (figures per round, medians, rounds > 20 % off the median flagged)
  --rounds N       with --long-lived: rounds (default ${DEFAULT_LONG_LIVED_ROUNDS})
  --cp-sidecars N,...  control-plane sizes to run instead of the mode's (full: ${FULL_SIZES.controlPlaneSidecars.join(', ')})
  --cp-deadline S  each control-plane size stops after S seconds and reports what it reached
  --only           workloads among: ${WORKLOAD_IDS.join(', ')} (with --long-lived: among ${LONG_LIVED_WORKLOADS.join(', ')})
  --contenders     contenders among: ${CONTENDER_IDS.join(', ')} (trellis is always run;
                   trellis-gw and trellis-wss run bulk, rr50 and churn only)
  --sidecar-workers N  the Trellis sidecars run with --workers N (default 1)
  --out DIR        where <date>.json and <date>.md go (default bench/results)`;

/** @throws Error with a one-line reason for a bad flag. */
export function parseBenchOptions(argv: string[], defaultOutDir: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      tiny: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      contenders: { type: 'string', multiple: true },
      'long-lived': { type: 'boolean', default: false },
      rounds: { type: 'string' },
      'cp-deadline': { type: 'string' },
      'cp-sidecars': { type: 'string' },
      out: { type: 'string' },
      'sidecar-workers': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help === true) throw new Error(USAGE);
  const mode = values.quick === true ? 'quick' : 'full';
  if (values.tiny === true && mode !== 'quick') throw new Error('--tiny goes with --quick');
  const sizesName: SizesName = values.tiny === true ? 'tiny' : mode;
  const longLived = values['long-lived'] === true;
  if (values.rounds !== undefined && !longLived) throw new Error('--rounds goes with --long-lived');
  const longLivedRounds = longLived ? wholeNumber(values.rounds ?? String(DEFAULT_LONG_LIVED_ROUNDS), '--rounds', MAX_ROUNDS) : undefined;
  const workloads = pickList(values.only, longLived ? LONG_LIVED_WORKLOADS : WORKLOAD_IDS, '--only');
  const cpDeadlineSeconds = values['cp-deadline'] === undefined ? undefined : wholeNumber(values['cp-deadline'], '--cp-deadline', MAX_CP_DEADLINE_SECONDS);
  const baseSizes = { full: FULL_SIZES, quick: QUICK_SIZES, tiny: TINY_SIZES }[sizesName];
  const cpSidecars = values['cp-sidecars']?.split(',').map((text) => wholeNumber(text, '--cp-sidecars', MAX_CP_SIDECARS));
  const contenders = pickList(values.contenders, CONTENDER_IDS, '--contenders');
  // Every figure is a ratio to Trellis's, so Trellis always runs.
  if (!contenders.includes('trellis')) contenders.push('trellis');
  return {
    mode,
    sizesName,
    sizes: cpSidecars === undefined ? baseSizes : { ...baseSizes, controlPlaneSidecars: cpSidecars },
    workloads,
    contenders: CONTENDER_IDS.filter((id) => contenders.includes(id)),
    longLivedRounds,
    cpDeadlineSeconds,
    outDir: values.out ?? defaultOutDir,
    sidecarWorkers: values['sidecar-workers'] === undefined ? 1 : wholeNumber(values['sidecar-workers'], '--sidecar-workers', MAX_SIDECAR_WORKERS),
  };
}

function wholeNumber(text: string, flag: string, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < 1 || value > max) throw new Error(`${flag} must be a whole number 1..${max}, got "${text}"`);
  return value;
}

function pickList<T extends string>(given: string[] | undefined, known: readonly T[], flag: string): T[] {
  if (given === undefined) return [...known];
  const names = given.flatMap((value) => value.split(',')).map((name) => name.trim()).filter((name) => name !== '');
  for (const name of names) {
    if (!(known as readonly string[]).includes(name)) throw new Error(`${flag}: unknown "${name}" (known: ${known.join(', ')})`);
  }
  return known.filter((id) => names.includes(id));
}
