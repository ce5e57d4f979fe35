// The benchmark's long-lived mode, end to end (real proxies, real tools, tiny sizes, 2 rounds),
// interrupted with Ctrl-C (SIGINT) just before its last figure: the results files must hold
// everything measured until then. Checks the structure of the results, never the speed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { BenchResults, ContenderId, MetricRow } from '../../bench/results.js';
import { OFF_MEDIAN_FRACTION } from '../../bench/results.js';
import { median } from '../../bench/stats.js';
import { CPU_UNDER_ONE_TICK } from '../../bench/workloads/workload.js';

const RUN_SCRIPT = fileURLToPath(new URL('../../bench/run.js', import.meta.url));
/** About 45 s on a loaded 2-core machine; the bound only catches a hang. */
const RUN_TIMEOUT_MS = 3 * 60_000;
const CONTENDERS: ContenderId[] = ['direct', 'trellis', 'stunnel', 'haproxy'];
const PROXIES: ContenderId[] = ['trellis', 'stunnel', 'haproxy'];
/** The first figure printed: the JSON must already hold it. */
const FIRST_FIGURE = /rr50 round 1\/2 direct: .*GET requests\/s/;
/** The next-to-last figure: Ctrl-C here leaves HAProxy's second bulk round unmeasured. */
const LAST_BUT_ONE_FIGURE = /bulk round 2\/2 stunnel: .*GB\/s/;
/** What the supervisor exits with on SIGINT. */
const SIGINT_EXIT_CODE = 130;

async function readResults(outDir: string): Promise<{ results: BenchResults; markdown: string }> {
  const files = await readdir(outDir);
  const jsonFile = files.find((name) => name.endsWith('.json'));
  const markdownFile = files.find((name) => name.endsWith('.md'));
  assert.ok(jsonFile !== undefined && markdownFile !== undefined, `expected a .json and a .md in the output directory, got ${files.join(', ')}`);
  return { results: JSON.parse(await readFile(join(outDir, jsonFile), 'utf8')) as BenchResults, markdown: await readFile(join(outDir, markdownFile), 'utf8') };
}

function row(results: BenchResults, metric: string): MetricRow {
  const found = results.rows.find((candidate) => candidate.metric === metric);
  assert.ok(found !== undefined, `no row ${metric}`);
  return found;
}

describe('bench --long-lived --quick --tiny --rounds 2, interrupted before its last figure', () => {
  let outDir: string;
  let atFirstFigure: BenchResults;
  let results: BenchResults;
  let markdown: string;
  let exitCode: number | null;
  let stderr = '';

  before(async () => {
    outDir = await mkdtemp(join(tmpdir(), 'trellis-bench-long-test-'));
    const args = [RUN_SCRIPT, '--quick', '--tiny', '--long-lived', '--rounds', '2', '--contenders', CONTENDERS.join(','), '--out', outDir];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let firstRead: Promise<BenchResults> | undefined;
    let interrupted = false;
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      firstRead ??= FIRST_FIGURE.test(stderr) ? readResults(outDir).then((read) => read.results) : undefined;
      if (!interrupted && LAST_BUT_ONE_FIGURE.test(stderr)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    [exitCode] = (await once(child, 'exit')) as [number | null];
    clearTimeout(timer);
    assert.ok(interrupted, `the run ended before its next-to-last figure (exit ${exitCode}):\n${stderr.slice(-3000)}`);
    assert.ok(firstRead !== undefined, 'no first figure was printed');
    atFirstFigure = await firstRead;
    ({ results, markdown } = await readResults(outDir));
  });

  after(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('has written the results, incomplete, by the time the first figure is printed', () => {
    assert.equal(atFirstFigure.complete, false);
    assert.equal(atFirstFigure.longLived?.roundsDone, 0);
    assert.equal(typeof row(atFirstFigure, 'rr50.get.rps').rounds?.direct?.[0], 'number');
  });

  it('keeps, after Ctrl-C, every figure measured until then and says the run is incomplete', () => {
    assert.equal(exitCode, SIGINT_EXIT_CODE);
    assert.equal(results.complete, false);
    assert.deepEqual(results.longLived?.sequence, ['rr50', 'rr1', 'churn', 'bulk']);
    assert.equal(results.longLived?.rounds, 2);
    assert.equal(results.longLived?.roundsDone, 1);
    assert.match(markdown, /\*\*Incomplete\*\*/);
    // HAProxy's second bulk round was under way: only its first is in.
    assert.equal(row(results, 'bulk.throughput').rounds?.haproxy?.length, 1);
    assert.equal(row(results, 'bulk.throughput').rounds?.stunnel?.length, 2);
  });

  it('has every round of every contender, the median of the rounds, and the rounds off it', () => {
    const metrics = ['rr50.get.rps', 'rr50.get.p99', 'rr50.get.p999', 'rr1.get.p50', 'rr1.get.p99', 'rr1.get.p999', 'churn.rps', 'bulk.throughput'];
    for (const metric of metrics) {
      const measured = row(results, metric);
      for (const contender of CONTENDERS) {
        const rounds = measured.rounds?.[contender] ?? [];
        const where = `${metric} / ${contender}`;
        assert.ok(rounds.length >= (metric === 'bulk.throughput' && contender === 'haproxy' ? 1 : 2), `${where}: rounds ${JSON.stringify(rounds)}`);
        for (const cell of rounds) assert.ok(typeof cell === 'number' && cell > 0, `${where}: round figure ${String(cell)}`);
        const numbers = rounds as number[];
        assert.equal(measured.cells[contender], median(numbers), `${where}: the cell is the median of the rounds`);
        const middle = median(numbers);
        const expected = numbers.flatMap((value, index) => (numbers.length > 1 && Math.abs(value - middle) / middle > OFF_MEDIAN_FRACTION ? [index + 1] : []));
        assert.deepEqual(measured.offMedian?.[contender], expected, `${where}: rounds off the median`);
      }
    }
  });

  it('has the CPU of the proxy processes per unit of work for every workload and proxy', () => {
    for (const metric of ['rr50.cpu_per_request', 'rr1.cpu_per_request', 'churn.cpu_per_connection', 'bulk.cpu_per_gb']) {
      const measured = row(results, metric);
      for (const contender of PROXIES) {
        const rounds = measured.rounds?.[contender] ?? [];
        // A tiny round can leave a proxy under one /proc clock tick: said so, never a 0. One round at least is measured.
        const measuredRounds = rounds.filter((cell) => typeof cell === 'number');
        assert.ok(measuredRounds.length >= 1 && measuredRounds.every((cell) => cell > 0), `${metric} / ${contender}: ${JSON.stringify(rounds)}`);
        for (const cell of rounds) if (typeof cell === 'string') assert.ok(cell.startsWith(CPU_UNDER_ONE_TICK), `${metric} / ${contender}: ${cell}`);
      }
      assert.match(String(measured.cells.direct), /no proxy/);
    }
  });

  it('shows every round in the markdown, beside the median', () => {
    assert.match(markdown, /## Rounds/);
    assert.match(markdown, /\| figure \| unit \| contender \| round 1 \| round 2 \| median \|/);
    assert.match(markdown, /\| 1 conn: GET p99\.9 \| ms \| stunnel \| [\d.]+( ⚠)? \| [\d.]+( ⚠)? \| [\d.]+ \|/);
  });
});
