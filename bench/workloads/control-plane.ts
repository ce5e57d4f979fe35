/**
 * Control plane: N simulated sidecars (clients/control-plane-simulator.ts and its worker
 * processes) against one fresh control plane per N on its file store, then against two fresh
 * replicas sharing a fresh etcd (the simulated sidecars spread over both); CA signing rate, time until all hold their
 * snapshot, a mesh-wide policy change to all, an endpoint change to its subscribers, the
 * control plane's CPU per registration and its memory per sidecar. Trellis only: the other
 * contenders have no control plane.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SimulatorReport } from '../clients/control-plane-simulator.js';
import type { BenchControlPlane } from '../contenders/trellis.js';
import { startControlPlane } from '../contenders/trellis.js';
import { startBenchEtcd } from '../etcd.js';
import type { Cell, MetricRow } from '../results.js';
import { CONTENDER_IDS, isMeasured, isTrellisVariant, VARIANT_NOT_RUN } from '../results.js';
import { readProcessMemory, toolPath } from '../system.js';
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

/** Where the control plane keeps its state: its own file, or two replicas sharing one etcd. */
interface StoreVariant {
  prefix: 'cp' | 'cp-etcd';
  suffix: string;
  replicas: number;
}
const FILE_STORE: StoreVariant = { prefix: 'cp', suffix: '', replicas: 1 };
const TWO_REPLICAS_ON_ETCD: StoreVariant = { prefix: 'cp-etcd', suffix: ' (2 replicas on etcd)', replicas: 2 };

/** The figures of one size, under `variant`'s metric prefix and with its label suffix. */
function rowSpecs(sidecars: number, variant: StoreVariant): RowSpec[] {
  const rows: RowSpec[] = [
    { metric: `${sidecars}.joined`, label: `sidecars joined (of ${sidecars}) within the bound`, unit: 'sidecars', better: 'higher' },
    { metric: `${sidecars}.snapshots`, label: `sidecars with their snapshot (of ${sidecars}) within the bound`, unit: 'sidecars', better: 'higher' },
    { metric: `${sidecars}.certs_per_s`, label: `CA signing, ${sidecars} joins`, unit: 'certs/s', better: 'higher' },
    { metric: `${sidecars}.join_cpu_ms`, label: `control-plane CPU per join, ${sidecars}`, unit: 'CPU ms', better: 'lower' },
    { metric: `${sidecars}.connect_s`, label: `${sidecars} sidecars connected + snapshot`, unit: 's', better: 'lower' },
    { metric: `${sidecars}.connect_cpu_ms`, label: `control-plane CPU per connecting sidecar, ${sidecars}`, unit: 'CPU ms', better: 'lower' },
    { metric: `${sidecars}.sim_connect_cpu_ms`, label: `simulated sidecars' CPU per connecting sidecar, ${sidecars}`, unit: 'CPU ms', better: 'lower' },
    { metric: `${sidecars}.policy_p50`, label: `policy change → ${sidecars} sidecars, p50`, unit: 'ms', better: 'lower' },
    { metric: `${sidecars}.policy_p99`, label: `policy change → ${sidecars} sidecars, p99`, unit: 'ms', better: 'lower' },
    { metric: `${sidecars}.policy_max`, label: `policy change → ${sidecars} sidecars, last`, unit: 'ms', better: 'lower' },
    { metric: `${sidecars}.endpoint_p50`, label: `endpoint change → its 30 subscribers, ${sidecars} sidecars, p50`, unit: 'ms', better: 'lower' },
    { metric: `${sidecars}.endpoint_p99`, label: `endpoint change → its 30 subscribers, ${sidecars} sidecars, p99`, unit: 'ms', better: 'lower' },
    { metric: `${sidecars}.registration_cpu_us`, label: `control-plane CPU per registration, ${sidecars} sidecars`, unit: 'CPU µs', better: 'lower' },
    { metric: `${sidecars}.rss`, label: `control-plane RSS, ${sidecars} sidecars`, unit: 'MB', better: 'lower' },
    { metric: `${sidecars}.rss_per_sidecar`, label: `control-plane RSS per connected sidecar, ${sidecars}`, unit: 'KB', better: 'lower' },
  ];
  return rows.map((row) => ({ ...row, metric: `${variant.prefix}.${row.metric}`, label: `${row.label}${variant.suffix}` }));
}

export const controlPlaneWorkload: Workload = {
  id: 'control-plane',
  title: 'control plane (simulated sidecars)',
  async run(context: WorkloadContext) {
    const rows: MetricRow[] = [];
    for (const sidecars of context.sizes.controlPlaneSidecars) {
      for (const variant of [FILE_STORE, TWO_REPLICAS_ON_ETCD]) {
        const sizeRows = rowsOf('control-plane', rowSpecs(sidecars, variant));
        for (const id of CONTENDER_IDS) explainAll(sizeRows, id, isTrellisVariant(id) ? VARIANT_NOT_RUN : NO_CONTROL_PLANE);
        const bound = context.controlPlaneDeadlineSeconds === undefined ? '' : `, at most ${context.controlPlaneDeadlineSeconds} s`;
        context.progress(`  control-plane${variant.suffix}: ${sidecars} simulated sidecars in ${SIMULATOR_WORKERS} worker processes${bound}`);
        try {
          const figures = await simulate(context, sidecars, variant);
          for (const row of sizeRows) row.cells.trellis = figures[row.metric] ?? 'no figure';
        } catch (error) {
          context.observe(`control-plane${variant.suffix} / ${sidecars} sidecars: ${(error as Error).message}`);
          context.progress(`  control-plane: failed: ${shortError(error)}`);
          explainAll(sizeRows, 'trellis', `failed: ${shortError(error)}`);
        }
        rows.push(...sizeRows);
      }
    }
    return rows;
  },
};

/** The control plane of `variant`: one on its file store, or replicas on a fresh etcd (stopped with them). */
async function startControlPlanes(context: WorkloadContext, variant: StoreVariant): Promise<{ replicas: BenchControlPlane[]; stop: () => Promise<void> }> {
  const etcd = variant.replicas === 1 ? undefined : await startBenchEtcd(context.supervisor, toolPath(context.tools, 'etcd'), await mkdtemp(join(context.workDir, 'etcd-')));
  const replicas: BenchControlPlane[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(replicas.map((replica) => replica.process.stop()));
    await etcd?.process.stop();
  };
  try {
    // One after another: the first creates the CA and admin token in etcd, the others read them.
    for (let i = 0; i < variant.replicas; i += 1) {
      replicas.push(await startControlPlane(context.supervisor, context.repoRoot, await mkdtemp(join(context.workDir, 'cp-sim-')), { manyFiles: true, etcd }));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { replicas, stop };
}

async function simulate(context: WorkloadContext, sidecars: number, variant: StoreVariant): Promise<Record<string, Cell>> {
  const { replicas, stop } = await startControlPlanes(context, variant);
  const script = fileURLToPath(new URL('../clients/control-plane-simulator.js', import.meta.url));
  const timeoutMs = simulatorTimeoutMs(sidecars, context.controlPlaneDeadlineSeconds);
  const urls = replicas.map((replica) => replica.url).join(',');
  const pids = replicas.map((replica) => String(replica.process.pid)).join(',');
  const args = [script, urls, replicas[0]!.adminTokenFile, String(sidecars), String(context.sizes.policyRounds), String(timeoutMs), pids, String(SIMULATOR_WORKERS)];
  const simulator = context.supervisor.spawn('control-plane simulator', process.execPath, args, { manyFiles: true, stdinPipe: true });
  try {
    const [line] = await simulator.waitForOutput(/^\{"sidecars".*$/m, timeoutMs + REPORT_GRACE_MS);
    const report = JSON.parse(line) as SimulatorReport;
    const rssMB = (await Promise.all(replicas.map((replica) => readProcessMemory(replica.process.pid)))).reduce((sum, memory) => sum + memory.rssMB, 0);
    for (const error of report.errors) context.observe(`control-plane${variant.suffix} / ${sidecars} sidecars: ${error}`);
    const { policy, endpoint } = report;
    const fixed = (value: number | null, digits = 0): string => (value === null ? '–' : value.toFixed(digits));
    context.progress(
      `    ${report.joined} joins at ${report.certsPerSecond.toFixed(0)} certs/s; ${report.snapshots} snapshots in ${report.connectSeconds.toFixed(1)} s; ` +
        `policy p99 ${fixed(policy.p99Ms)} ms (${policy.missed} missed); endpoint p99 ${fixed(endpoint.p99Ms)} ms over ${endpoint.samples} arrivals (${endpoint.missed} missed); ` +
        `${fixed(report.cpuUsPerRegistration)} CPU µs per registration; RSS ${rssMB.toFixed(0)} MB${variant.replicas > 1 ? ' (replicas together)' : ''}` +
        (report.timedOut.length > 0 ? `; ran out of time in: ${report.timedOut.join(', ')}` : ''),
    );
    const firstError = report.errors[0] === undefined ? '' : ` (first error: ${report.errors[0]})`;
    const partial = `${report.joined} joined, ${report.snapshots} of ${sidecars} with a snapshot${report.timedOut.length > 0 ? `, out of time in ${report.timedOut.join(', ')}` : ''}${firstError}`;
    const complete = report.snapshots === sidecars;
    const figure = (value: number | null, missed = 0): Cell => (value !== null && isMeasured(value) && complete && missed === 0 ? value : `incomplete: ${partial}`);
    const grownKB = report.rssBeforeMB === null ? null : ((rssMB - report.rssBeforeMB) * 1000) / Math.max(1, report.snapshots);
    return {
      [`${variant.prefix}.${sidecars}.joined`]: report.joined,
      [`${variant.prefix}.${sidecars}.snapshots`]: report.snapshots,
      // The rate of the joins made, whether or not all N joined within the bound.
      [`${variant.prefix}.${sidecars}.certs_per_s`]: report.joined > 0 ? report.certsPerSecond : `incomplete: ${partial}`,
      [`${variant.prefix}.${sidecars}.join_cpu_ms`]: report.joinCpuMsPerSidecar ?? `incomplete: ${partial}`,
      [`${variant.prefix}.${sidecars}.connect_s`]: figure(report.connectSeconds),
      [`${variant.prefix}.${sidecars}.connect_cpu_ms`]: figure(report.connectCpuMsPerSidecar),
      [`${variant.prefix}.${sidecars}.sim_connect_cpu_ms`]: figure(report.simulatorCpuMsPerSidecar),
      [`${variant.prefix}.${sidecars}.policy_p50`]: figure(policy.p50Ms, policy.missed),
      [`${variant.prefix}.${sidecars}.policy_p99`]: figure(policy.p99Ms, policy.missed),
      [`${variant.prefix}.${sidecars}.policy_max`]: figure(policy.maxMs, policy.missed),
      [`${variant.prefix}.${sidecars}.endpoint_p50`]: figure(endpoint.p50Ms, endpoint.missed),
      [`${variant.prefix}.${sidecars}.endpoint_p99`]: figure(endpoint.p99Ms, endpoint.missed),
      [`${variant.prefix}.${sidecars}.registration_cpu_us`]: figure(report.cpuUsPerRegistration, endpoint.missed),
      [`${variant.prefix}.${sidecars}.rss`]: rssMB,
      // What the sessions added: RSS with them minus RSS before the first channel, per session.
      [`${variant.prefix}.${sidecars}.rss_per_sidecar`]: figure(grownKB),
    };
  } finally {
    simulator.tell('close');
    await Promise.race([simulator.exited(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
    await simulator.stop();
    await stop();
  }
}
