/**
 * The long-lived mode: one pair per contender for the whole run, as a production sidecar lives
 * for days under mixed traffic. Every round runs the same sequence of data-path steps on the
 * pairs (contenders taking turns within each step); each figure is kept per round, the cell is
 * the median, and a round more than 20 % off the median is flagged: the rounds show whether a
 * proxy's speed depends on what it did before.
 *
 * A pair's server side forwards to one app port. The redis steps and the iperf3 step need
 * different apps, so the port holds redis-server or an iperf3 server in turn (stopped and
 * started between steps, when no connection is open): the proxies dial the app per
 * connection, so they stay the same processes and no hop is added on the path.
 */
import { startIperfServer, startRedis } from './apps.js';
import type { RunningApp } from './apps.js';
import type { Contender, RunningContender } from './contenders/contender.js';
import { probeWithoutClientCert } from './mtls-check.js';
import { pickFreePort } from './net.js';
import type { Cell, ContenderId, MetricRow } from './results.js';
import { isMeasured, OFF_MEDIAN_FRACTION } from './results.js';
import { median } from './stats.js';
import type { AppKind, DataPathStep, WorkloadContext } from './workloads/workload.js';
import { describeFigures, explainAll, noteSideTrouble, rowsOf, shortError } from './workloads/workload.js';

const NOT_YET = 'not measured yet';

/** One app at a time on one loopback port. */
class AppSlot {
  readonly #context: WorkloadContext;
  readonly #port: number;
  #current: { kind: AppKind; app: RunningApp } | undefined;

  constructor(context: WorkloadContext, port: number) {
    this.#context = context;
    this.#port = port;
  }

  get port(): number {
    return this.#port;
  }

  /** Puts an app of `kind` on the port, stopping the other one first (or, with `fresh`, this one too). */
  async use(kind: AppKind, fresh = false): Promise<void> {
    if (!fresh && this.#current?.kind === kind && this.#current.app.process.running) return;
    await this.close();
    const { supervisor, tools } = this.#context;
    const app = kind === 'redis' ? await startRedis(supervisor, tools, this.#port) : await startIperfServer(supervisor, tools, this.#port);
    this.#current = { kind, app };
  }

  async close(): Promise<void> {
    await this.#current?.app.process.stop();
    this.#current = undefined;
  }
}

export interface LongLivedProgress {
  /** Called once the pairs run, with how each server side refused a client without a certificate. */
  mtlsChecked(verdicts: Partial<Record<ContenderId, string>>): void;
  /** Called as each round starts. */
  roundStarting(round: number): void;
  /** Called after every figure is recorded (the results files are written here). */
  measured(rows: readonly MetricRow[], roundsDone: number): Promise<void>;
}

/**
 * Runs `rounds` rounds of `steps` on one pair per contender; returns the rows (also handed to
 * `progress.measured` after every measurement, filled so far).
 */
export async function runLongLived(context: WorkloadContext, steps: readonly DataPathStep[], rounds: number, progress: LongLivedProgress): Promise<MetricRow[]> {
  const rowsByStep = new Map(steps.map((step) => [step, rowsOf(step.id, step.rows)]));
  const rows = [...rowsByStep.values()].flat();
  for (const contender of context.contenders) explainAll(rows, contender.id, NOT_YET);
  const slot = new AppSlot(context, await pickFreePort());
  const pairs = new Map<ContenderId, RunningContender>();
  try {
    await slot.use(steps[0]?.app ?? 'redis');
    for (const contender of context.contenders) {
      context.progress(`long-lived: starting the ${contender.id} pair`);
      try {
        pairs.set(contender.id, await contender.start(slot.port));
      } catch (error) {
        context.observe(`long-lived / ${contender.id}: the pair did not start: ${(error as Error).message}`);
        explainAll(rows, contender.id, `failed: the pair did not start: ${shortError(error)}`);
      }
    }
    progress.mtlsChecked(await checkPairsMutualTls(context, pairs));
    for (let round = 1; round <= rounds; round++) {
      progress.roundStarting(round);
      for (const step of steps) {
        const stepRows = rowsByStep.get(step)!;
        await slot.use(step.app);
        for (const contender of context.contenders) {
          const pair = pairs.get(contender.id);
          if (pair === undefined) continue;
          if (!runsStep(contender, step)) {
            explainAll(stepRows, contender.id, contender.skipReason ?? `n/a (${contender.id} does not run ${step.id})`);
            continue;
          }
          if (step.freshAppEachTime === true) await slot.use(step.app, true);
          const figures = await measureRound(context, step, pair, contender, round, rounds);
          record(stepRows, contender.id, round, figures);
          await progress.measured(rows, round - 1);
          context.progress(`  ${step.id} round ${round}/${rounds} ${contender.id}: ${describeFigures(step.rows, figures)}`);
        }
      }
      await progress.measured(rows, round);
    }
    observeOffMedian(context, rows);
  } finally {
    for (const [id, pair] of pairs) noteSideTrouble(context, 'long-lived', id, pair);
    await Promise.all([...pairs.values()].map((pair) => pair.stop()));
    await slot.close();
  }
  return rows;
}

/**
 * The mutual-TLS check of the fresh mode (mtls-check.ts), on the pairs of the run rather than
 * on pairs of its own: a client without a certificate must be refused by each server side (a
 * server side that let it in would pass its byte to the app, which answers).
 */
async function checkPairsMutualTls(context: WorkloadContext, pairs: ReadonlyMap<ContenderId, RunningContender>): Promise<Partial<Record<ContenderId, string>>> {
  const verdicts: Partial<Record<ContenderId, string>> = {};
  for (const [id, pair] of pairs) {
    if (pair.serverSidePort === undefined) continue;
    verdicts[id] = await probeWithoutClientCert(pair.serverSidePort, pair.serverSideWsPath).catch((error: Error) => `not checked: ${error.message}`);
    context.progress(`  mTLS ${id}: a client without a certificate is ${verdicts[id]}`);
  }
  return verdicts;
}

function runsStep(contender: Contender, step: DataPathStep): boolean {
  return contender.workloads === undefined || contender.workloads.includes(step.id);
}

async function measureRound(context: WorkloadContext, step: DataPathStep, pair: RunningContender, contender: Contender, round: number, rounds: number): Promise<Record<string, Cell>> {
  try {
    const dead = [pair.sides?.client, pair.sides?.server, ...(pair.relays ?? [])].find((side) => side !== undefined && !side.running);
    if (dead !== undefined) throw new Error(`${dead.name} is no longer running: ${dead.lastWords(200)}`);
    return await step.measure(context, pair);
  } catch (error) {
    context.observe(`long-lived / ${step.id} / ${contender.id} / round ${round} of ${rounds}: ${(error as Error).message}`);
    return Object.fromEntries(step.rows.map((row) => [row.metric, `failed in round ${round}: ${shortError(error)}`]));
  }
}

/** Adds a round's figures to the rows: the round's cell, the median so far, the rounds off it. */
function record(rows: MetricRow[], contender: ContenderId, round: number, figures: Record<string, Cell>): void {
  for (const row of rows) {
    const cells = [...(row.rounds?.[contender] ?? [])];
    cells[round - 1] = figures[row.metric] ?? 'no figure (the workload produced none)';
    row.rounds = { ...row.rounds, [contender]: cells };
    const numbers = cells.filter(isMeasured);
    // As in the fresh mode: one failed round is worth more to the reader than the median of the others.
    const failure = cells.find((cell) => !isMeasured(cell));
    const middle = median(numbers);
    row.cells[contender] = failure ?? middle;
    row.samples = { ...row.samples, [contender]: numbers };
    row.offMedian = { ...row.offMedian, [contender]: offMedianRounds(cells, middle) };
  }
}

/** The rounds (from 1) whose figure is further than {@link OFF_MEDIAN_FRACTION} from `middle`. */
export function offMedianRounds(cells: readonly Cell[], middle: number): number[] {
  if (!(middle > 0) || cells.filter(isMeasured).length < 2) return [];
  return cells.flatMap((cell, index) => (isMeasured(cell) && Math.abs(cell - middle) / middle > OFF_MEDIAN_FRACTION ? [index + 1] : []));
}

/** After the last round: every figure with a round off its median, in the progress and the observations (one line per figure and contender). */
function observeOffMedian(context: WorkloadContext, rows: readonly MetricRow[]): void {
  for (const row of rows) {
    for (const [contender, flagged] of Object.entries(row.offMedian ?? {})) {
      if (flagged.length === 0) continue;
      const cells = (row.rounds?.[contender as ContenderId] ?? []).map((cell) => (isMeasured(cell) ? Number(cell.toPrecision(3)) : cell));
      const note = `${row.metric} / ${contender}: round${flagged.length > 1 ? 's' : ''} ${flagged.join(', ')} more than ${OFF_MEDIAN_FRACTION * 100} % off the median (rounds: ${cells.join(', ')} ${row.unit})`;
      context.observe(`long-lived: ${note}`);
      context.progress(`  off the median: ${note}`);
    }
  }
}
