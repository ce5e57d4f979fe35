/**
 * Control plane: N simulated sidecars (clients/control-plane-simulator.ts and its worker
 * processes) against one fresh control plane per N; CA signing rate, time until all hold their
 * snapshot, a mesh-wide policy change to all, an endpoint change to its subscribers, the
 * control plane's CPU per registration and its memory per sidecar. Trellis only: the other
 * contenders have no control plane.
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

/**
 * Bound on one simulator run: joins, handshakes, every policy round and the endpoint burst;
 * `--cp-deadline` when given. A run that reaches it reports what it had (the cells say how far
 * it got, and the joined and snapshot rows how many).
 */
function simulatorTimeoutMs(sidecars: number, deadlineSeconds: number | undefined): number {
  if (deadlineSeconds !== undefined) return deadlineSeconds * 1000;
  // Joins alone run at 40–450 certs/s on this shared machine.
  return 120_000 + 60 * sidecars;
}
/** Beyond the simulator's own bound: its report, after the phase it was in gave up. */
const REPORT_GRACE_MS = 60_000;
/** Worker processes holding the simulated channels (the machine has 2 cores; more would only compete). */
const SIMULATOR_WORKERS = 4;
const NO_CONTROL_PLANE = 'n/a (no control plane)';

function rowSpecs(sidecars: number): RowSpec[] {
  return [
    { metric: `cp.${sidecars}.joined`, label: `sidecars joined (of ${sidecars}) within the bound`, unit: 'sidecars', better: 'higher' },
    { metric: `cp.${sidecars}.snapshots`, label: `sidecars with their snapshot (of ${sidecars}) within the bound`, unit: 'sidecars', better: 'higher' },
    { metric: `cp.${sidecars}.certs_per_s`, label: `CA signing, ${sidecars} joins`, unit: 'certs/s', better: 'higher' },
    { metric: `cp.${sidecars}.connect_s`, label: `${sidecars} sidecars connected + snapshot`, unit: 's', better: 'lower' },
    { metric: `cp.${sidecars}.connect_cpu_ms`, label: `control-plane CPU per connecting sidecar, ${sidecars}`, unit: 'CPU ms', better: 'lower' },
    { metric: `cp.${sidecars}.sim_connect_cpu_ms`, label: `simulated sidecars' CPU per connecting sidecar, ${sidecars}`, unit: 'CPU ms', better: 'lower' },
    { metric: `cp.${sidecars}.policy_p50`, label: `policy change → ${sidecars} sidecars, p50`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.policy_p99`, label: `policy change → ${sidecars} sidecars, p99`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.policy_max`, label: `policy change → ${sidecars} sidecars, last`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.endpoint_p50`, label: `endpoint change → its 30 subscribers, ${sidecars} sidecars, p50`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.endpoint_p99`, label: `endpoint change → its 30 subscribers, ${sidecars} sidecars, p99`, unit: 'ms', better: 'lower' },
    { metric: `cp.${sidecars}.registration_cpu_us`, label: `control-plane CPU per registration, ${sidecars} sidecars`, unit: 'CPU µs', better: 'lower' },
    { metric: `cp.${sidecars}.rss`, label: `control-plane RSS, ${sidecars} sidecars`, unit: 'MB', better: 'lower' },
    { metric: `cp.${sidecars}.rss_per_sidecar`, label: `control-plane RSS per connected sidecar, ${sidecars}`, unit: 'KB', better: 'lower' },
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
      const bound = context.controlPlaneDeadlineSeconds === undefined ? '' : `, at most ${context.controlPlaneDeadlineSeconds} s`;
      context.progress(`  control-plane: ${sidecars} simulated sidecars in ${SIMULATOR_WORKERS} worker processes${bound}`);
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
  const timeoutMs = simulatorTimeoutMs(sidecars, context.controlPlaneDeadlineSeconds);
  const args = [script, cp.url, cp.adminTokenFile, String(sidecars), String(context.sizes.policyRounds), String(timeoutMs), String(cp.process.pid), String(SIMULATOR_WORKERS)];
  const simulator = context.supervisor.spawn('control-plane simulator', process.execPath, args, { manyFiles: true, stdinPipe: true });
  try {
    const [line] = await simulator.waitForOutput(/^\{"sidecars".*$/m, timeoutMs + REPORT_GRACE_MS);
    const report = JSON.parse(line) as SimulatorReport;
    const memory = await readProcessMemory(cp.process.pid);
    for (const error of report.errors) context.observe(`control-plane / ${sidecars} sidecars: ${error}`);
    const { policy, endpoint } = report;
    const fixed = (value: number | null, digits = 0): string => (value === null ? '–' : value.toFixed(digits));
    context.progress(
      `    ${report.joined} joins at ${report.certsPerSecond.toFixed(0)} certs/s; ${report.snapshots} snapshots in ${report.connectSeconds.toFixed(1)} s; ` +
        `policy p99 ${fixed(policy.p99Ms)} ms (${policy.missed} missed); endpoint p99 ${fixed(endpoint.p99Ms)} ms over ${endpoint.samples} arrivals (${endpoint.missed} missed); ` +
        `${fixed(report.cpuUsPerRegistration)} CPU µs per registration; RSS ${memory.rssMB.toFixed(0)} MB` +
        (report.timedOut.length > 0 ? `; ran out of time in: ${report.timedOut.join(', ')}` : ''),
    );
    const firstError = report.errors[0] === undefined ? '' : ` (first error: ${report.errors[0]})`;
    const partial = `${report.joined} joined, ${report.snapshots} of ${sidecars} with a snapshot${report.timedOut.length > 0 ? `, out of time in ${report.timedOut.join(', ')}` : ''}${firstError}`;
    const complete = report.snapshots === sidecars;
    const figure = (value: number | null, missed = 0): Cell => (value !== null && isMeasured(value) && complete && missed === 0 ? value : `incomplete: ${partial}`);
    const grownKB = report.rssBeforeMB === null ? null : ((memory.rssMB - report.rssBeforeMB) * 1000) / Math.max(1, report.snapshots);
    return {
      [`cp.${sidecars}.joined`]: report.joined,
      [`cp.${sidecars}.snapshots`]: report.snapshots,
      // The rate of the joins made, whether or not all N joined within the bound.
      [`cp.${sidecars}.certs_per_s`]: report.joined > 0 ? report.certsPerSecond : `incomplete: ${partial}`,
      [`cp.${sidecars}.connect_s`]: figure(report.connectSeconds),
      [`cp.${sidecars}.connect_cpu_ms`]: figure(report.connectCpuMsPerSidecar),
      [`cp.${sidecars}.sim_connect_cpu_ms`]: figure(report.simulatorCpuMsPerSidecar),
      [`cp.${sidecars}.policy_p50`]: figure(policy.p50Ms, policy.missed),
      [`cp.${sidecars}.policy_p99`]: figure(policy.p99Ms, policy.missed),
      [`cp.${sidecars}.policy_max`]: figure(policy.maxMs, policy.missed),
      [`cp.${sidecars}.endpoint_p50`]: figure(endpoint.p50Ms, endpoint.missed),
      [`cp.${sidecars}.endpoint_p99`]: figure(endpoint.p99Ms, endpoint.missed),
      [`cp.${sidecars}.registration_cpu_us`]: figure(report.cpuUsPerRegistration, endpoint.missed),
      [`cp.${sidecars}.rss`]: memory.rssMB,
      // What the sessions added: RSS with them minus RSS before the first channel, per session.
      [`cp.${sidecars}.rss_per_sidecar`]: figure(grownKB),
    };
  } finally {
    simulator.tell('close');
    await Promise.race([simulator.exited(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
    await simulator.stop();
    await cp.process.stop();
  }
}
