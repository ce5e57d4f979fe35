// Pure parts of the benchmark harness: redis-benchmark's report, the long-lived mode's rounds
// off the median, and the command line.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { offMedianRounds } from '../../bench/long-lived.js';
import { parseBenchOptions } from '../../bench/options.js';
import { parseRedisBenchmarkReport } from '../../bench/workloads/redis-benchmark.js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { RunningContender } from '../../bench/contenders/contender.js';
import type { SupervisedProcess } from '../../bench/supervisor.js';
import { clockTicksPerSecond } from '../../bench/system.js';
import { CPU_UNDER_ONE_TICK, proxyCpuMeter } from '../../bench/workloads/workload.js';

// The shape redis-benchmark 7.0 prints without --csv (progress lines end in a carriage return).
const REPORT = [
  'SET: rps=0.0 (overall: -nan) avg_msec=-nan (overall: -nan)\r                    \r====== SET ======',
  '  2000 requests completed in 0.08 seconds',
  '',
  'Latency by percentile distribution:',
  '0.000% <= 0.263 milliseconds (cumulative count 1)',
  '50.000% <= 0.767 milliseconds (cumulative count 1016)',
  '99.805% <= 27.935 milliseconds (cumulative count 1997)',
  '99.902% <= 27.967 milliseconds (cumulative count 1999)',
  '100.000% <= 27.983 milliseconds (cumulative count 2000)',
  '',
  'Cumulative distribution of latencies:',
  '99.950% <= 28.000 milliseconds (cumulative count 1999)',
  '',
  'Summary:',
  '  throughput summary: 25641.03 requests per second',
  '  latency summary (msec):',
  '          avg       min       p50       p95       p99       max',
  '        1.484     0.256     0.767     1.671    27.759    27.983',
  ' \r====== GET ======',
  'Latency by percentile distribution:',
  '0.000% <= 0.079 milliseconds (cumulative count 1)',
  '99.219% <= 1.311 milliseconds (cumulative count 1985)',
  '100.000% <= 1.551 milliseconds (cumulative count 2000)',
  '',
  'Cumulative distribution of latencies:',
  '',
  'Summary:',
  '  throughput summary: 40000.00 requests per second',
  '  latency summary (msec):',
  '          avg       min       p50       p95       p99       max',
  '        0.700     0.079     0.743     1.015     1.311     1.551',
  '',
].join('\n');

describe('parseRedisBenchmarkReport', () => {
  it('reads throughput, p50 and p99 from the summary and p99.9 from the percentile distribution', () => {
    assert.deepEqual(parseRedisBenchmarkReport(REPORT), [
      { test: 'SET', rps: 25641.03, p50Ms: 0.767, p99Ms: 27.759, p999Ms: 27.967 },
      // Fewer requests than a p99.9 needs: the next percentile listed, 100 %, the slowest.
      { test: 'GET', rps: 40000, p50Ms: 0.743, p99Ms: 1.311, p999Ms: 1.551 },
    ]);
  });

  it('throws on a report without a summary', () => {
    assert.throws(() => parseRedisBenchmarkReport('====== GET ======\nLatency by percentile distribution:\n100.000% <= 1.0 milliseconds\n'), /no throughput/);
  });
});

describe('proxyCpuMeter', () => {
  it('says a pair that used under one clock tick was too short to measure, rather than 0, and measures one that burns CPU', async () => {
    const ticks = clockTicksPerSecond();
    // Idle until told, then burns 300 ms of CPU, says so, and idles until killed.
    const script = "process.stdin.once('data', () => { const end = Date.now() + 300; while (Date.now() < end); console.log('burnt'); }); setInterval(() => undefined, 1000); console.log('ready');";
    const child = spawn(process.execPath, ['-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      // Started and idle: node's own start-up burns CPU.
      await once(child.stdout, 'data');
      const side = { pid: child.pid } as SupervisedProcess;
      const pair = { clientPort: 0, sides: { client: side, server: side }, serverSidePort: 0 } as RunningContender;
      const quiet = proxyCpuMeter(pair, ticks);
      await quiet.start();
      const reading = await quiet.stop();
      assert.ok(typeof reading === 'string' && reading.startsWith(CPU_UNDER_ONE_TICK), String(reading));
      const loaded = proxyCpuMeter(pair, ticks);
      await loaded.start();
      const burnt = once(child.stdout, 'data');
      child.stdin.write('go\n');
      await burnt;
      const seconds = await loaded.stop();
      // Both sides are the one process here: counted twice.
      assert.ok(typeof seconds === 'number' && seconds >= 2 * 0.2, String(seconds));
    } finally {
      child.kill();
    }
  });
});

describe('offMedianRounds', () => {
  it('flags the rounds more than 20 % from the median, numbered from 1, and ignores failed rounds', () => {
    assert.deepEqual(offMedianRounds([1.0, 1.1, 0.9, 1.5], 1.05), [4]);
    assert.deepEqual(offMedianRounds([1.0, 'failed in round 2: x', 0.7], 0.85), []);
    assert.deepEqual(offMedianRounds([0.2, 1.0, 1.0], 1.0), [1]);
    assert.deepEqual(offMedianRounds([3], 3), [], 'one round has nothing to differ from');
  });
});

describe('parseBenchOptions', () => {
  it('takes --long-lived with rounds, its workloads in the order of a round', () => {
    const options = parseBenchOptions(['--long-lived', '--rounds', '4', '--only', 'bulk,rr1'], '/out');
    assert.equal(options.longLivedRounds, 4);
    assert.deepEqual(options.workloads, ['rr1', 'bulk']);
    assert.deepEqual(parseBenchOptions(['--long-lived'], '/out').workloads, ['rr50', 'rr1', 'churn', 'bulk']);
    assert.equal(parseBenchOptions([], '/out').longLivedRounds, undefined);
  });

  it('takes --cp-deadline in seconds', () => {
    assert.equal(parseBenchOptions(['--cp-deadline', '90'], '/out').cpDeadlineSeconds, 90);
    assert.equal(parseBenchOptions([], '/out').cpDeadlineSeconds, undefined);
  });

  it('takes --cp-sidecars as the control-plane sizes to run', () => {
    assert.deepEqual(parseBenchOptions(['--cp-sidecars', '1000,5000'], '/out').sizes.controlPlaneSidecars, [1000, 5000]);
    assert.deepEqual(parseBenchOptions([], '/out').sizes.controlPlaneSidecars, [1_000, 5_000, 10_000]);
    assert.throws(() => parseBenchOptions(['--cp-sidecars', '1000,x'], '/out'), /--cp-sidecars must be a whole number/);
  });

  it('refuses rounds without --long-lived, bad counts, and workloads a long-lived round does not run', () => {
    assert.throws(() => parseBenchOptions(['--rounds', '2'], '/out'), /--rounds goes with --long-lived/);
    assert.throws(() => parseBenchOptions(['--long-lived', '--rounds', '0'], '/out'), /--rounds must be a whole number/);
    assert.throws(() => parseBenchOptions(['--cp-deadline', '1.5'], '/out'), /--cp-deadline must be a whole number/);
    assert.throws(() => parseBenchOptions(['--long-lived', '--only', 'streams'], '/out'), /--only: unknown "streams"/);
  });
});
