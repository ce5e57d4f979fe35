// The benchmark harness in --quick mode, end to end: real proxies, real tools, tiny sizes.
// Checks the structure of the results, never the speed: speed is the report's business.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { BenchResults } from '../../bench/results.js';
import { CONTENDER_IDS, isTrellisVariant, TRELLIS_VARIANT_IDS, TRELLIS_VARIANT_WORKLOADS, WORKLOAD_IDS } from '../../bench/results.js';

const RUN_SCRIPT = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
/** The quick run takes about a minute here; the bound only catches a hang. */
const QUICK_RUN_TIMEOUT_MS = 4 * 60_000;

describe('bench --quick --tiny', () => {
  let outDir: string;
  let results: BenchResults;
  let markdown: string;
  let stdout = '';
  let stderr = '';

  before(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'trellis-bench-test-'));
    const child = spawn(process.execPath, [RUN_SCRIPT, '--quick', '--tiny', '--out', outDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGTERM'), QUICK_RUN_TIMEOUT_MS);
    const [code] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.equal(code, 0, `bench --quick --tiny failed:\n${stderr.slice(-3000)}`);
    const files = await readdir(outDir);
    const jsonFile = files.find((name) => name.endsWith('.json'));
    const markdownFile = files.find((name) => name.endsWith('.md'));
    assert.ok(jsonFile !== undefined && markdownFile !== undefined, `expected a .json and a .md in the output directory, got ${files.join(', ')}`);
    results = JSON.parse(await readFile(join(outDir, jsonFile), 'utf8')) as BenchResults;
    markdown = await readFile(join(outDir, markdownFile), 'utf8');
  });

  after(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('runs every workload against every contender', () => {
    assert.equal(results.complete, true);
    assert.equal(results.mode, 'quick');
    assert.equal(results.sizesName, 'tiny');
    assert.deepEqual(results.contenders, [...CONTENDER_IDS]);
    for (const workload of WORKLOAD_IDS) {
      assert.ok(results.rows.some((row) => row.workload === workload), `no row for workload ${workload}`);
    }
  });

  it('has, in every row, a positive figure or an explanation for each contender', () => {
    for (const row of results.rows) {
      for (const contender of CONTENDER_IDS) {
        const cell = row.cells[contender];
        const where = `${row.metric} / ${contender}`;
        if (typeof cell === 'number') assert.ok(Number.isFinite(cell) && cell > 0, `${where}: ${cell} is not a positive number`);
        else assert.ok(typeof cell === 'string' && cell.length > 0, `${where}: no figure and no explanation`);
      }
    }
  });

  it('measures Trellis in every row (a failure there is a bug, not an explanation)', () => {
    for (const row of results.rows) {
      assert.equal(typeof row.cells.trellis, 'number', `${row.metric}: Trellis has no figure: ${String(row.cells.trellis)}`);
    }
  });

  it('measures Trellis via gateways and over wss in their workloads, and says why not in the others', () => {
    for (const row of results.rows) {
      for (const variant of TRELLIS_VARIANT_IDS) {
        const cell = row.cells[variant];
        if (TRELLIS_VARIANT_WORKLOADS.includes(row.workload)) assert.equal(typeof cell, 'number', `${row.metric}: ${variant} has no figure: ${String(cell)}`);
        else assert.match(String(cell), /^n\/a \(this link variant runs/, `${row.metric} / ${variant}`);
      }
    }
    for (const metric of ['bulk.cpu_per_gb', 'rr50.cpu_per_request', 'churn.cpu_per_connection', 'rr1.cpu_per_request', 'hol.cpu_per_gb', 'streams.cpu_per_connection', 'rr1.get.p999', 'rr50.get.p999']) {
      assert.ok(results.rows.some((row) => row.metric === metric), `no row ${metric}`);
    }
    for (const variant of TRELLIS_VARIANT_IDS) {
      const target = results.targets.find((candidate) => candidate.metric === 'bulk.throughput' && candidate.subject === variant);
      assert.ok(target !== undefined, `no bulk target for ${variant}`);
    }
  });

  it('measures the control plane on its file store and as two replicas on one etcd, every simulated sidecar with its snapshot', () => {
    for (const prefix of ['cp', 'cp-etcd']) {
      const snapshots = results.rows.filter((row) => row.metric.startsWith(`${prefix}.`) && row.metric.endsWith('.snapshots'));
      assert.equal(snapshots.length, 1, prefix);
      const [row] = snapshots;
      assert.equal(row?.cells.trellis, Number(row?.metric.split('.')[1]), `${prefix}: ${String(row?.cells.trellis)}`);
    }
  });

  it('says why a contender has no figure where the workload does not apply', () => {
    const controlPlaneRows = results.rows.filter((row) => row.workload === 'control-plane');
    for (const row of controlPlaneRows) {
      for (const contender of CONTENDER_IDS.filter((id) => id !== 'trellis' && !isTrellisVariant(id))) assert.match(String(row.cells[contender]), /no control plane/);
    }
    const memoryRows = results.rows.filter((row) => row.metric.includes('rss') && row.workload !== 'control-plane');
    assert.ok(memoryRows.length > 0);
    for (const row of memoryRows) assert.match(String(row.cells.direct), /no proxy/);
  });

  it('shows that the server side of every proxy pair refuses a client without a certificate', () => {
    for (const contender of CONTENDER_IDS.filter((id) => id !== 'direct')) {
      assert.match(results.mtlsChecks[contender] ?? 'missing', /^refused/, `${contender}: ${results.mtlsChecks[contender]}`);
    }
  });

  it('describes the machine and marks every target met, not met or not measured', () => {
    assert.ok(results.machine.cores > 0);
    assert.ok(results.machine.cpuModel.length > 0);
    assert.match(results.machine.node, /^v\d+/);
    assert.ok(results.machine.nodeOpenssl.length > 0);
    assert.ok(results.targets.length > 0);
    for (const target of results.targets) assert.ok(['met', 'not met', 'not measured'].includes(target.verdict), `${target.metric}: ${target.verdict}`);
  });

  it('prints and saves the markdown table with Trellis beside each contender and the ratios', () => {
    assert.match(
      markdown,
      /\| figure \| unit \| Trellis \| direct \| Trellis ÷ direct \| stunnel \| Trellis ÷ stunnel \| HAProxy \| Trellis ÷ HAProxy \| Trellis via 2 gateways \| Trellis via 2 gateways ÷ Trellis \| Trellis over wss \| Trellis over wss ÷ Trellis \| target \|/,
    );
    assert.ok(stdout.includes(markdown.split('\n')[0] ?? ''), 'the table is printed at the end');
  });
});
