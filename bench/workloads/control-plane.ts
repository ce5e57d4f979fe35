/**
 * Control plane: N simulated sidecars (clients/control-plane-simulator.ts, its own process)
 * against one fresh control plane per N; CA signing rate, policy-change propagation to all
 * sessions, and the control plane's memory. Trellis only: the other contenders have no
 * control plane.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimulatorReport } from '../clients/control-plane-simulator.js';
import { startControlPlane } from '../contenders/trellis.js';
import type { Cell, MetricRow } from '../results.js';
import { CONTENDER_IDS, isMeasured, isTrellisVariant, VARIANT_NOT_RUN } from '../results.js';
import { readProcessMemory } from '../system.js';
import type { RowSpec, Workload, WorkloadContext } from './workload.js';
import { explainAll, rowsOf, shortError } from './workload.js';

/** Bound on one simulator run: joins, handshakes, settling and every policy round. */
const SIMULATOR_TIMEOUT_MS = 8 * 60_000;
const NO_CONTROL_PLANE = 'n/a (no control plane)';

function rowSpecs(sidecars: number): RowSpec[] {
  return [
    { metric: `cp.${sidecars}.certs_per_s`, label: `CA signing, ${sidecars} joins`, unit: 'certs/s', better: 'higher' },
    { metric: `cp.${sidecars}.connect_s`, label: `${sidecars} sidecars connected + snapshot`, unit: 's', better: 'lower' },
    { metric: `cp.${sidecars}.policy_p50`, label: `policy change → ${sidecars} sidecars, p50`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.policy_p99`, label: `policy change → ${sidecars} sidecars, p99`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.policy_max`, label: `policy change → ${sidecars} sidecars, last`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.rss`, label: `control-plane RSS, ${sidecars} sidecars`, unit: 'MB', better: 'lower' },
  ];
}

export const controlPlaneWorkload: Workload = {
  id: 'control-plane',
  title: 'control plane (simulated sidecars)',
  async run(context: WorkloadContext) {
    const rows: MetricRow[] = [];
    for (const sidecars of context.sizes.controlPlaneSidecars) {
      const sizeRows = rowsOf('control-plane', rowSpecs(sidecars));
      for (const id of CONTENDER_IDS) explainAll(sizeRows, id, isTrellisVariant(id) ? VARIANT_NOT_RUN : NO_CONTROL_PLANE);
      context.progress(`  control-plane: ${sidecars} simulated sidecars`);
      try {
        const figures = await simulate(context, sidecars);
        for (const row of sizeRows) row.cells.trellis = figures[row.metric] ?? 'no figure';
      } catch (error) {
        context.observe(`control-plane / ${sidecars} sidecars: ${(error as Error).message}`);
        context.progress(`  control-plane: failed: ${shortError(error)}`);
        explainAll(sizeRows, 'trellis', `failed: ${shortError(error)}`);
      }
      rows.push(...sizeRows);
    }
    return rows;
  },
};

async function simulate(context: WorkloadContext, sidecars: number): Promise<Record<string, Cell>> {
  const cp = await startControlPlane(context.supervisor, context.repoRoot, await mkdtemp(join(context.workDir, 'cp-sim-')), { manyFiles: true });
  const script = fileURLToPath(new URL('../clients/control-plane-simulator.js', import.meta.url));
  const args = [script, cp.url, cp.adminTokenFile, String(sidecars), String(context.sizes.policyRounds), String(SIMULATOR_TIMEOUT_MS)];
  const simulator = context.supervisor.spawn('control-plane simulator', process.execPath, args, { manyFiles: true, stdinPipe: true });
  try {
    const [line] = await simulator.waitForOutput(/^\{"joined".*$/m, SIMULATOR_TIMEOUT_MS + 30_000);
    const report = JSON.parse(line) as SimulatorReport;
    const memory = await readProcessMemory(cp.process.pid);
    for (const error of report.errors) context.observe(`control-plane / ${sidecars} sidecars: ${error}`);
    const policy = report.policy;
    context.progress(
      `    ${report.joined} joins at ${report.certsPerSecond.toFixed(0)} certs/s; ${report.connected} connected in ${report.connectSeconds.toFixed(1)} s, busy ${report.settleSeconds.toFixed(1)} s after; ` +
        `policy p50 ${policy.p50Ms?.toFixed(0)} ms, p99 ${policy.p99Ms?.toFixed(0)} ms over ${policy.samples} arrivals (${policy.missed} missed)`,
    );
    const incomplete = report.joined < sidecars || report.connected < sidecars || policy.missed > 0;
    const firstError = report.errors[0] === undefined ? '' : ` (first error: ${report.errors[0]})`;
    const partial = `${report.joined} joined, ${report.connected} connected, ${policy.missed} arrivals missed of ${sidecars * policy.rounds}${firstError}`;
    const latency = (value: number | null): Cell => (isMeasured(value ?? NaN) && !incomplete ? (value as number) : `incomplete: ${partial}`);
    return {
      [`cp.${sidecars}.certs_per_s`]: report.joined === sidecars ? report.certsPerSecond : `incomplete: ${partial}`,
      [`cp.${sidecars}.connect_s`]: report.connected === sidecars ? report.connectSeconds : `incomplete: ${partial}`,
      [`cp.${sidecars}.policy_p50`]: latency(policy.p50Ms),
      [`cp.${sidecars}.policy_p99`]: latency(policy.p99Ms),
      [`cp.${sidecars}.policy_max`]: latency(policy.maxMs),
      [`cp.${sidecars}.rss`]: memory.rssMB,
    };
  } finally {
    simulator.tell('close');
    await Promise.race([simulator.exited(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    await simulator.stop();
    await cp.process.stop();
  }
}
