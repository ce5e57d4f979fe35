/**
 * The shape of a benchmark run's results, shared by the workloads (which fill it), the report
 * (which renders it) and the test (which checks its structure).
 */
import type { MachineInfo } from './system.js';

/**
 * The contenders, in the order of the report's columns after Trellis. `trellis-gw` and
 * `trellis-wss` are Trellis itself over other links (across zones through gateways; a
 * WebSocket link): the report compares them with the Trellis column, not the other way round.
 */
export const CONTENDER_IDS = ['direct', 'trellis', 'stunnel', 'haproxy', 'trellis-gw', 'trellis-wss'] as const;
export type ContenderId = (typeof CONTENDER_IDS)[number];

export const CONTENDER_TITLES: Record<ContenderId, string> = {
  direct: 'direct',
  trellis: 'Trellis',
  stunnel: 'stunnel',
  haproxy: 'HAProxy',
  'trellis-gw': 'Trellis via 2 gateways',
  'trellis-wss': 'Trellis over wss',
};

/** The contenders that are Trellis over another kind of link; their ratio is theirs ÷ Trellis's. */
export const TRELLIS_VARIANT_IDS: readonly ContenderId[] = ['trellis-gw', 'trellis-wss'];

export function isTrellisVariant(id: ContenderId): boolean {
  return TRELLIS_VARIANT_IDS.includes(id);
}

export const WORKLOAD_IDS = ['bulk', 'hol', 'rr50', 'rr1', 'churn', 'streams', 'idle', 'control-plane', 'micro'] as const;
export type WorkloadId = (typeof WORKLOAD_IDS)[number];

/** The workloads the Trellis variants run: the data path's throughput, many connections, churn. */
export const TRELLIS_VARIANT_WORKLOADS: readonly WorkloadId[] = ['bulk', 'rr50', 'churn'];

/** The cell of a Trellis variant in a workload it does not run. */
export const VARIANT_NOT_RUN = `n/a (this link variant runs ${TRELLIS_VARIANT_WORKLOADS.join(', ')} only)`;

/**
 * One figure of one contender: a positive number in the row's unit, or a sentence saying why
 * there is no number (the contender cannot run the workload, or it failed, and how).
 */
export type Cell = number | string;

/** One line of the table: one figure measured for every contender. */
export interface MetricRow {
  workload: WorkloadId;
  /** Stable id, e.g. `rr50.get.rps`; targets refer to it. */
  metric: string;
  label: string;
  unit: string;
  /** Which way is good; decides how a ratio reads. */
  better: 'higher' | 'lower';
  cells: Record<ContenderId, Cell>;
  /** Every round's figure, when the workload measured more than one round (the cell is their median). */
  samples?: Partial<Record<ContenderId, number[]>>;
  /** Long-lived mode: each round's cell, round 1 first (a failed round keeps its reason). */
  rounds?: Partial<Record<ContenderId, Cell[]>>;
  /** Long-lived mode: the rounds (from 1) whose figure is more than 20 % off the contender's median. */
  offMedian?: Partial<Record<ContenderId, number[]>>;
}

/** A round whose figure is further than this fraction from the median is flagged. */
export const OFF_MEDIAN_FRACTION = 0.2;

/** What a long-lived run did: one pair per contender, the same sequence every round. */
export interface LongLivedInfo {
  rounds: number;
  /** Rounds finished when the results were written. */
  roundsDone: number;
  /** The workloads of every round, in order. */
  sequence: WorkloadId[];
  offMedianFraction: number;
  /** The machine's 1-minute load average as each round started. */
  loadAverages: number[];
}

/**
 * A goal for one figure of Trellis (or of `subject`, a Trellis variant): against another
 * contender's figure (the ratio subject ÷ versus), or an absolute bound.
 */
export type Target =
  | { metric: string; kind: 'relative'; subject?: ContenderId; versus: ContenderId; factor: number; text: string }
  | { metric: string; kind: 'absolute'; bound: number; text: string };

export type TargetVerdict = 'met' | 'not met' | 'not measured';

export interface TargetResult {
  metric: string;
  /** Whose figure the target is about (Trellis when absent). */
  subject?: ContenderId;
  text: string;
  verdict: TargetVerdict;
  /** The Trellis figure, or its ratio to the other contender, that decided the verdict. */
  measured: string;
}

/** Everything one run produced; written as JSON beside the markdown table. */
export interface BenchResults {
  startedAt: string;
  /**
   * False while the run goes on: the files are written after every workload (every figure in
   * the long-lived mode), so a run interrupted keeps what it measured.
   */
  complete: boolean;
  /** Set for a long-lived run. */
  longLived?: LongLivedInfo;
  /** Each control-plane size's time bound (`--cp-deadline`), when given. */
  cpDeadlineSeconds?: number;
  /** `--sidecar-workers`, when not 1: the Trellis sidecars forwarded in that many worker processes each. */
  sidecarWorkers?: number;
  durationSeconds: number;
  mode: 'full' | 'quick';
  /** Which set of sizes: a quick run may use the tiny ones of the harness's test. */
  sizesName: 'full' | 'quick' | 'tiny';
  machine: MachineInfo;
  /** The sizes the run used (requests, streams, simulated sidecars, seconds). */
  sizes: Record<string, number | number[]>;
  contenders: ContenderId[];
  workloads: WorkloadId[];
  rows: MetricRow[];
  /** Per proxy contender: how its server side refused a TLS client without a certificate. */
  mtlsChecks: Partial<Record<ContenderId, string>>;
  targets: TargetResult[];
  /** The machine's 1-minute load average as each workload started: other work on a shared machine shows here. */
  loadAverages: Partial<Record<WorkloadId, number>>;
  /** Anything odd seen during the run (errors printed by a contender, failed cells). */
  observations: string[];
}

/** A row whose cells all start as "not run", for workloads to fill. */
export function emptyRow(workload: WorkloadId, metric: string, label: string, unit: string, better: 'higher' | 'lower'): MetricRow {
  const cells = Object.fromEntries(CONTENDER_IDS.map((id) => [id, 'not run (left out by --contenders)'])) as Record<ContenderId, Cell>;
  return { workload, metric, label, unit, better, cells };
}

/** True for a cell that holds a measurement. */
export function isMeasured(cell: Cell): cell is number {
  return typeof cell === 'number' && Number.isFinite(cell);
}
