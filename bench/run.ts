/**
 * `npm run bench`: installs missing tools, runs every workload against every contender (each
 * proxy side its own process, on loopback), prints progress on stderr, then writes
 * `bench/results/<date>.json` and `.md` and prints the table.
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
import { CONTENDER_IDS, emptyRow } from './results.js';
import { manyFilesLimit, ProcessSupervisor } from './supervisor.js';
import { describeMachine, ensureTools, REQUIRED_TOOLS, toolPath } from './system.js';
import { bulkWorkload } from './workloads/bulk.js';
import { controlPlaneWorkload } from './workloads/control-plane.js';
import { headOfLineWorkload } from './workloads/head-of-line.js';
import { idleWorkload } from './workloads/idle.js';
import { microWorkload } from './workloads/micro.js';
import { churnWorkload, manyConnectionsWorkload, oneConnectionWorkload } from './workloads/redis-benchmark.js';
import { streamsWorkload } from './workloads/streams.js';
import type { Workload, WorkloadContext } from './workloads/workload.js';
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
  progress(`machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, OpenSSL ${machine.nodeOpenssl}, ${openFilesLimit} open files per process`);
  const supervisor = new ProcessSupervisor();
  const workDir = await mkdtemp(join(tmpdir(), 'trellis-bench-'));
  const observations: string[] = [];
  const rows: MetricRow[] = [];
  const contenders: Contender[] = [];
  let mtlsChecks: BenchResults['mtlsChecks'] = {};
  const loadAverages: BenchResults['loadAverages'] = {};
  try {
    const pki = await createBenchPki(supervisor, toolPath(tools, 'openssl'), workDir);
    const deps: ContenderDeps = { supervisor, tools, pki, workDir, repoRoot: REPO_ROOT, openFilesLimit };
    contenders.push(...options.contenders.map((id) => createContender(id, deps)));
    const context: WorkloadContext = {
      supervisor,
      tools,
      sizes: options.sizes,
      contenders,
      repoRoot: REPO_ROOT,
      workDir,
      openFilesLimit,
      progress,
      observe: (note) => observations.push(note),
    };
    progress('mtls: does each server side refuse a client without a certificate?');
    mtlsChecks = await checkMutualTls(supervisor, contenders, progress);
    for (const [id, verdict] of Object.entries(mtlsChecks)) {
      if (!verdict.startsWith('refused')) observations.push(`mtls / ${id}: ${verdict}`);
    }
    for (const workload of ALL_WORKLOADS.filter((candidate) => options.workloads.includes(candidate.id))) {
      loadAverages[workload.id] = loadavg()[0] ?? 0;
      progress(`${workload.id}: ${workload.title} (load average ${loadAverages[workload.id]?.toFixed(1)})`);
      try {
        rows.push(...(await workload.run(context)));
      } catch (error) {
        // The app of the workload did not start: every cell says so, and the run goes on.
        observations.push(`${workload.id}: ${(error as Error).message}`);
        rows.push(failedWorkloadRow(workload.id, `workload failed: ${shortError(error)}`));
      }
    }
  } finally {
    await Promise.all(contenders.map((contender) => contender.close().catch(() => undefined)));
    await supervisor.close();
    await rm(workDir, { recursive: true, force: true });
  }
  const results: BenchResults = {
    startedAt: startedAt.toISOString(),
    durationSeconds: (Date.now() - startedAt.getTime()) / 1000,
    mode: options.mode,
    sizesName: options.sizesName,
    machine,
    sizes: { ...options.sizes },
    contenders: options.contenders,
    workloads: options.workloads,
    rows,
    mtlsChecks,
    loadAverages,
    targets: evaluateTargets(rows, targetsFor(options.sizes)),
    observations,
  };
  return { results, ...(await writeResults(options.outDir, results)) };
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
  progress(`${options.mode} run (${options.sizesName} sizes): ${options.workloads.join(', ')} × ${options.contenders.join(', ')}`);
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
