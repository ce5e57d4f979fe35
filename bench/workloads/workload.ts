/** What a workload is, and the loop that runs it against each contender in turn. */
import type { Contender, RunningContender } from '../contenders/contender.js';
import type { BenchSizes } from '../options.js';
import type { Cell, ContenderId, MetricRow, WorkloadId } from '../results.js';
import { emptyRow, isMeasured } from '../results.js';
import { median } from '../stats.js';
import type { ProcessSupervisor } from '../supervisor.js';
import type { ToolPaths } from '../system.js';
import { readProcessCpuSeconds } from '../system.js';

export interface WorkloadContext {
  supervisor: ProcessSupervisor;
  tools: ToolPaths;
  sizes: BenchSizes;
  /** The contenders of this run, direct first. */
  contenders: readonly Contender[];
  repoRoot: string;
  /** A temporary directory of this run. */
  workDir: string;
  /** Open files a proxy process may hold (see `manyFilesLimit`). */
  openFilesLimit: number;
  /** Clock ticks per second of /proc/PID/stat (see `clockTicksPerSecond`). */
  ticksPerSecond: number;
  /** `--cp-deadline`: each control-plane size stops after this and reports what it reached. */
  controlPlaneDeadlineSeconds?: number;
  /** One line of progress for the person watching. */
  progress(line: string): void;
  /** Something odd worth the reader's attention (kept in the results). */
  observe(note: string): void;
}

export interface Workload {
  readonly id: WorkloadId;
  readonly title: string;
  run(context: WorkloadContext): Promise<MetricRow[]>;
}

/** The app behind a pair: what a data-path step talks to through it. */
export type AppKind = 'redis' | 'iperf3';

/**
 * One measurement of a data-path workload against a running pair whose server side forwards
 * to an app of kind `app`: the fresh mode runs it on a new pair per round, the long-lived
 * mode on the pair it keeps for the whole run. Returns figures by metric id of `rows`.
 */
export interface DataPathStep {
  readonly id: WorkloadId;
  readonly title: string;
  readonly app: AppKind;
  /** The long-lived mode starts the app anew before each measurement of this step. */
  readonly freshAppEachTime?: boolean;
  readonly rows: readonly RowSpec[];
  measure(context: WorkloadContext, pair: RunningContender): Promise<Record<string, Cell>>;
}

/** A row's description, before any figure is in. */
export interface RowSpec {
  metric: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
}

/** Longest error text kept in a cell; the full text goes to the observations. */
const MAX_CELL_TEXT_CHARS = 160;

export function rowsOf(workload: WorkloadId, specs: readonly RowSpec[]): MetricRow[] {
  return specs.map((spec) => emptyRow(workload, spec.metric, spec.label, spec.unit, spec.better));
}

/** Sets the same text in every row for `contender` (a reason there are no figures). */
export function explainAll(rows: MetricRow[], contender: ContenderId, text: string): void {
  for (const row of rows) row.cells[contender] = text;
}

/**
 * For each contender: a fresh pair in front of the app on `appPort`, `measure`, stop; all of
 * that `repeats` times, the contenders taking turns, and each figure the median of its rounds
 * (every round's figure is kept in the row's `samples`). A contender that fails to start or
 * fails while measured gets the reason in its cells; the other contenders still run.
 * `measure` returns figures by metric id.
 */
export async function measureEachContender(
  context: WorkloadContext,
  workload: WorkloadId,
  rows: MetricRow[],
  appPort: number,
  measure: (pair: RunningContender, contender: Contender) => Promise<Record<string, Cell>>,
  repeats = 1,
): Promise<void> {
  const figuresByRound = new Map<ContenderId, Record<string, Cell>[]>();
  for (let round = 1; round <= repeats; round++) {
    for (const contender of context.contenders) {
      if (contender.workloads !== undefined && !contender.workloads.includes(workload)) {
        if (round === 1) explainAll(rows, contender.id, contender.skipReason ?? `n/a (${contender.id} does not run ${workload})`);
        continue;
      }
      context.progress(`  ${workload}: ${contender.id}${repeats > 1 ? ` (round ${round} of ${repeats})` : ''}`);
      let pair: RunningContender | undefined;
      let figures: Record<string, Cell>;
      try {
        pair = await contender.start(appPort);
        figures = await measure(pair, contender);
        context.progress(`    ${describeFigures(rows, figures)}`);
      } catch (error) {
        const message = shortError(error);
        context.observe(`${workload} / ${contender.id}: ${(error as Error).message ?? String(error)}`);
        context.progress(`  ${workload}: ${contender.id} failed: ${message}`);
        figures = Object.fromEntries(rows.map((row) => [row.metric, `failed: ${message}`]));
      } finally {
        if (pair !== undefined) noteSideTrouble(context, workload, contender.id, pair);
        await pair?.stop();
      }
      figuresByRound.set(contender.id, [...(figuresByRound.get(contender.id) ?? []), figures]);
    }
  }
  for (const [contender, rounds] of figuresByRound) {
    for (const row of rows) {
      const cells = rounds.map((figures) => figures[row.metric] ?? 'no figure (the workload produced none)');
      const numbers = cells.filter(isMeasured);
      // One failed round is worth more to the reader than the median of the others.
      const failure = cells.find((cell) => !isMeasured(cell));
      row.cells[contender] = failure ?? median(numbers);
      if (repeats > 1) row.samples = { ...row.samples, [contender]: numbers };
    }
  }
}

/**
 * Warnings and errors a proxy logged: Trellis's JSON lines at level warn (40) or above,
 * stunnel's LOG0..LOG4, HAProxy's ALERT and WARNING lines.
 */
const TROUBLE_LINE = /"level":(4|5|6)\d|LOG[0-4]\[|\[(ALERT|WARNING)\]/;

/** Puts a side that died, or that logged warnings or errors, in the observations (`workload` names where). */
export function noteSideTrouble(context: WorkloadContext, workload: string, contender: ContenderId, pair: RunningContender): void {
  for (const side of [pair.sides?.client, pair.sides?.server, ...(pair.relays ?? [])]) {
    if (side === undefined) continue;
    if (!side.running) {
      context.observe(`${workload} / ${contender}: ${side.name} exited during the workload: ${side.lastWords()}`);
      context.progress(`  ${workload}: ${contender}: ${side.name} exited during the workload`);
    }
    const trouble = side.stderr().split('\n').filter((line) => TROUBLE_LINE.test(line));
    if (trouble.length > 0) context.observe(`${workload} / ${contender}: ${side.name} logged ${trouble.length} warning or error lines (in the last 64 KiB of its log), first: ${trouble[0]?.slice(0, 300)}`);
  }
}

/** One line of figures as measured: `label value unit; …` (what the person watching sees at once). */
export function describeFigures(rows: readonly RowSpec[], figures: Record<string, Cell>): string {
  return rows
    .filter((row) => figures[row.metric] !== undefined)
    .map((row) => {
      const cell = figures[row.metric]!;
      return `${row.label} ${isMeasured(cell) ? `${Number(cell.toPrecision(3))} ${row.unit}` : cell}`;
    })
    .join('; ');
}

/** The first line of an error, short enough for a table cell. */
export function shortError(error: unknown): string {
  const text = (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  return text.length > MAX_CELL_TEXT_CHARS ? `${text.slice(0, MAX_CELL_TEXT_CHARS)}…` : text;
}


/** How a CPU figure starts when the processes used less than one clock tick (see {@link proxyCpuMeter}). */
export const CPU_UNDER_ONE_TICK = 'under one CPU clock tick';

/**
 * A meter of the CPU seconds (user + system) the proxy processes of a pair use (both sides,
 * and the relays between them: Trellis's gateways), read from /proc: `start()` before the
 * load, `stop()` after it. `stop()` gives an explanation instead of a figure for the direct
 * path (no proxy), and when the processes used less than one clock tick between the two
 * readings (a tiny run can): /proc counts in ticks, so that reading is 0 without being
 * free, and a 0 would read as a real figure.
 */
export function proxyCpuMeter(pair: RunningContender, ticksPerSecond: number): { start(): Promise<void>; stop(): Promise<number | string> } {
  const pids = pair.sides === undefined ? [] : [pair.sides.client.pid, pair.sides.server.pid, ...(pair.relays ?? []).map((relay) => relay.pid)];
  const read = async (): Promise<number> => (await Promise.all(pids.map((pid) => readProcessCpuSeconds(pid, ticksPerSecond)))).reduce((sum, seconds) => sum + seconds, 0);
  let before = 0;
  return {
    async start() {
      before = await read();
    },
    async stop() {
      if (pids.length === 0) return 'n/a (no proxy)';
      const seconds = (await read()) - before;
      return seconds > 0 ? seconds : `${CPU_UNDER_ONE_TICK} (${1000 / ticksPerSecond} ms) in all: too short to measure`;
    },
  };
}
