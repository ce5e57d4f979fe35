/**
 * `npm run bench`: installs missing tools, runs every workload against every contender (each
 * proxy side its own process, on loopback), prints progress and each figure as it is measured
 * on stderr, writes `bench/results/<date>.json` and `.md` after every workload (`complete:
 * false` until the end, so an interrupted run keeps what it measured) and prints the table.
 * `--long-lived` keeps one pair per contender for the whole run instead (long-lived.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBenchPki } from './certs.js';
import { checkMutualTls } from './mtls-check.js';
import type { Contender, ContenderDeps } from './contenders/contender.js';
import { createDirectContender } from './contenders/direct.js';
import { createHaproxyContender } from './contenders/haproxy.js';
import { createStunnelContender } from './contenders/stunnel.js';
import { createTrellisContender } from './contenders/trellis.js';
import type { BenchOptions } from './options.js';
import { parseBenchOptions } from './options.js';
import { evaluateTargets, targetsFor, writeResults } from './report.js';
import type { BenchResults, ContenderId, MetricRow, WorkloadId } from './results.js';
import { CONTENDER_IDS, emptyRow, OFF_MEDIAN_FRACTION } from './results.js';
import { manyFilesLimit, ProcessSupervisor } from './supervisor.js';
import { clockTicksPerSecond, describeMachine, ensureTools, REQUIRED_TOOLS, toolPath } from './system.js';
import { runLongLived } from './long-lived.js';
import { bulkStep, bulkWorkload } from './workloads/bulk.js';
import { controlPlaneWorkload } from './workloads/control-plane.js';
import { headOfLineWorkload } from './workloads/head-of-line.js';
import { idleWorkload } from './workloads/idle.js';
import { microWorkload } from './workloads/micro.js';
import { churnStep, churnWorkload, manyConnectionsStep, manyConnectionsWorkload, oneConnectionStep, oneConnectionWorkload } from './workloads/redis-benchmark.js';
import { streamsWorkload } from './workloads/streams.js';
import type { DataPathStep, Workload, WorkloadContext } from './workloads/workload.js';
import { shortError } from './workloads/workload.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ALL_WORKLOADS: readonly Workload[] = [
  bulkWorkload,
  headOfLineWorkload,
  manyConnectionsWorkload,
  oneConnectionWorkload,
  churnWorkload,
  streamsWorkload,
  idleWorkload,
  controlPlaneWorkload,
  microWorkload,
];
const WORKLOADS_WITHOUT_PAIRS: readonly WorkloadId[] = ['control-plane', 'micro'];
/** The steps a long-lived round can run; the round runs them in the order of LONG_LIVED_WORKLOADS. */
const LONG_LIVED_STEPS: readonly DataPathStep[] = [manyConnectionsStep, oneConnectionStep, churnStep, bulkStep];

function createContender(id: ContenderId, deps: ContenderDeps): Contender {
  switch (id) {
    case 'direct':
      return createDirectContender();
    case 'trellis':
      return createTrellisContender(deps);
    case 'stunnel':
      return createStunnelContender(deps);
    case 'haproxy':
      return createHaproxyContender(deps);
    case 'trellis-gw':
      return createTrellisContender(deps, 'gateways');
    case 'trellis-wss':
      return createTrellisContender(deps, 'wss');
  }
}

/** Runs the benchmark; returns the results and where they were written. */
async function runBench(options: BenchOptions, progress: (line: string) => void): Promise<{ results: BenchResults; jsonPath: string; markdownPath: string; markdown: string }> {
  const startedAt = new Date();
  const tools = ensureTools(REQUIRED_TOOLS, progress);
  const openFilesLimit = manyFilesLimit();
  const machine = describeMachine(tools, openFilesLimit);
  if (options.sidecarWorkers !== 1) progress(`trellis sidecars with --workers ${options.sidecarWorkers}`);
  progress(`machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, OpenSSL ${machine.nodeOpenssl}, ${openFilesLimit} open files per process`);
  const supervisor = new ProcessSupervisor();
  const workDir = await mkdtemp(join(tmpdir(), 'trellis-bench-'));
  const rows: MetricRow[] = [];
  const contenders: Contender[] = [];
  const results: BenchResults = {
    startedAt: startedAt.toISOString(),
    complete: false,
    ...(options.longLivedRounds === undefined
      ? {}
      : { longLived: { rounds: options.longLivedRounds, roundsDone: 0, sequence: options.workloads, offMedianFraction: OFF_MEDIAN_FRACTION, loadAverages: [] } }),
    ...(options.cpDeadlineSeconds === undefined ? {} : { cpDeadlineSeconds: options.cpDeadlineSeconds }),
    ...(options.sidecarWorkers === 1 ? {} : { sidecarWorkers: options.sidecarWorkers }),
    durationSeconds: 0,
    mode: options.mode,
    sizesName: options.sizesName,
    machine,
    sizes: { ...options.sizes },
    contenders: options.contenders,
    workloads: options.workloads,
    rows,
    mtlsChecks: {},
    loadAverages: {},
    targets: [],
    observations: [],
  };
  /** Writes both files with what is measured so far (and, the last time, `complete`). */
  const save = async (complete = false): Promise<Awaited<ReturnType<typeof writeResults>>> => {
    results.complete = complete;
    results.durationSeconds = (Date.now() - startedAt.getTime()) / 1000;
    results.targets = evaluateTargets(rows, targetsFor(options.sizes));
    return writeResults(options.outDir, results);
  };
  try {
    const pki = await createBenchPki(supervisor, toolPath(tools, 'openssl'), workDir);
    const deps: ContenderDeps = { supervisor, tools, pki, workDir, repoRoot: REPO_ROOT, openFilesLimit, sidecarWorkers: options.sidecarWorkers };
    contenders.push(...options.contenders.map((id) => createContender(id, deps)));
    const context: WorkloadContext = {
      supervisor,
      tools,
      sizes: options.sizes,
      contenders,
      repoRoot: REPO_ROOT,
      workDir,
      openFilesLimit,
      ticksPerSecond: clockTicksPerSecond(),
      ...(options.cpDeadlineSeconds === undefined ? {} : { controlPlaneDeadlineSeconds: options.cpDeadlineSeconds }),
      progress,
      observe: (note) => results.observations.push(note),
    };
    const noteMtls = (verdicts: BenchResults['mtlsChecks']): void => {
      results.mtlsChecks = verdicts;
      for (const [id, verdict] of Object.entries(verdicts)) {
        if (!verdict.startsWith('refused')) results.observations.push(`mtls / ${id}: ${verdict}`);
      }
    };
    // The control-plane and micro workloads start no pair: a run of only those checks none.
    const startsPairs = options.workloads.some((id) => !WORKLOADS_WITHOUT_PAIRS.includes(id));
    if (options.longLivedRounds === undefined && startsPairs) {
      progress('mtls: does each server side refuse a client without a certificate?');
      noteMtls(await checkMutualTls(supervisor, contenders, progress));
    }
    if (options.longLivedRounds !== undefined) {
      const steps = options.workloads.map((id) => LONG_LIVED_STEPS.find((step) => step.id === id)).filter((step) => step !== undefined);
      for (const step of steps) results.loadAverages[step.id] = loadavg()[0] ?? 0;
      progress(`long-lived: ${options.longLivedRounds} rounds of ${steps.map((step) => step.id).join(', ')} on one pair per contender (load average ${loadavg()[0]?.toFixed(1)})`);
      const longLived = results.longLived!;
      await runLongLived(context, steps, options.longLivedRounds, {
        mtlsChecked: noteMtls,
        roundStarting: (round) => {
          longLived.loadAverages.push(loadavg()[0] ?? 0);
          progress(`long-lived round ${round} of ${options.longLivedRounds} (load average ${longLived.loadAverages.at(-1)?.toFixed(1)})`);
        },
        measured: async (filled, roundsDone) => {
          rows.splice(0, rows.length, ...filled);
          longLived.roundsDone = roundsDone;
          await save();
        },
      });
    } else {
      for (const workload of ALL_WORKLOADS.filter((candidate) => options.workloads.includes(candidate.id))) {
        results.loadAverages[workload.id] = loadavg()[0] ?? 0;
        progress(`${workload.id}: ${workload.title} (load average ${results.loadAverages[workload.id]?.toFixed(1)})`);
        try {
          rows.push(...(await workload.run(context)));
        } catch (error) {
          // The app of the workload did not start: every cell says so, and the run goes on.
          results.observations.push(`${workload.id}: ${(error as Error).message}`);
          rows.push(failedWorkloadRow(workload.id, `workload failed: ${shortError(error)}`));
        }
        await save();
      }
    }
  } finally {
    await Promise.all(contenders.map((contender) => contender.close().catch(() => undefined)));
    await supervisor.close();
    await rm(workDir, { recursive: true, force: true });
  }
  return { results, ...(await save(true)) };
}

function failedWorkloadRow(workload: WorkloadId, text: string): MetricRow {
  const row = emptyRow(workload, `${workload}.failed`, `${workload} (did not run)`, '', 'higher');
  for (const id of CONTENDER_IDS) row.cells[id] = text;
  return row;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchOptions(process.argv.slice(2), join(REPO_ROOT, 'bench', 'results'));
  } catch (error) {
    process.stderr.write(`bench: ${(error as Error).message}\n`);
    return 2;
  }
  const start = Date.now();
  const progress = (line: string): void => {
    process.stderr.write(`[${String(Math.round((Date.now() - start) / 1000)).padStart(4)} s] ${line}\n`);
  };
  const kind = options.longLivedRounds === undefined ? `${options.mode} run` : `long-lived ${options.mode} run, ${options.longLivedRounds} rounds`;
  progress(`${kind} (${options.sizesName} sizes): ${options.workloads.join(', ')} × ${options.contenders.join(', ')}`);
  const { markdown, jsonPath, markdownPath } = await runBench(options, progress);
  process.stdout.write(`\n${markdown}\n`);
  progress(`results written to ${jsonPath} and ${markdownPath}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error: Error) => {
    process.stderr.write(`bench: ${error.stack ?? error.message}\n`);
    process.exit(1);
  },
);
