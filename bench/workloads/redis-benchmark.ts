/**
 * Request/response workloads against a real redis-server, driven by redis-benchmark: many
 * connections, one connection, and a new connection per request (churn). Each is a
 * {@link DataPathStep} (one measurement against a running pair), which the fresh mode runs on
 * a new pair per round and the long-lived mode on the pair it keeps for the whole run.
 */
import { startRedis } from '../apps.js';
import type { RunningContender } from '../contenders/contender.js';
import type { Cell, WorkloadId } from '../results.js';
import { LOOPBACK } from '../net.js';
import { toolPath } from '../system.js';
import type { DataPathStep, RowSpec, Workload, WorkloadContext } from './workload.js';
import { measureEachContender, proxyCpuMeter, rowsOf } from './workload.js';

/** A bound on a redis-benchmark run: generous, so only a stall reaches it. */
const BASE_TIMEOUT_MS = 60_000;
const TIMEOUT_PER_REQUEST_MS = 2;
/** The tail percentile reported beside p50 and p99. */
const TAIL_PERCENTILE = 99.9;

/** One test of redis-benchmark's report. */
export interface RedisBenchmarkLine {
  test: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /**
   * The latency at the first percentile the report lists at or above 99.9 (redis-benchmark
   * lists 99.902 %, then 99.951 %, … from its HDR histogram): p99.9, or a little above it.
   * With fewer than about 1,000 requests this is the slowest request.
   */
  p999Ms: number;
}

/**
 * Parses redis-benchmark's full report (Redis 7, not `--csv`, which has no percentile past
 * p99): per `====== TEST ======` block, the percentile distribution and the summary.
 * @throws Error when a block lacks a figure.
 */
export function parseRedisBenchmarkReport(stdout: string): RedisBenchmarkLine[] {
  const blocks = stdout.split(/\r|\n/).join('\n').split(/^\s*====== (.+?) ======\s*$/m);
  const parsed: RedisBenchmarkLine[] = [];
  // split() with a capture group: [before, name1, body1, name2, body2, …]
  for (let i = 1; i + 1 < blocks.length; i += 2) {
    const test = blocks[i]!.trim();
    const body = blocks[i + 1]!;
    const fail = (what: string): never => {
      throw new Error(`redis-benchmark report of ${test} has no ${what}: ${body.slice(0, 300)}`);
    };
    const rps = Number(/throughput summary: ([\d.]+) requests per second/.exec(body)?.[1] ?? fail('throughput'));
    const summary = /avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)/.exec(body) ?? fail('latency summary');
    const distribution = body.slice(body.indexOf('Latency by percentile distribution:'), body.indexOf('Cumulative distribution of latencies:'));
    const tail = [...distribution.matchAll(/^([\d.]+)% <= ([\d.]+) milliseconds/gm)].map((match) => ({ percentile: Number(match[1]), ms: Number(match[2]) })).find((point) => point.percentile >= TAIL_PERCENTILE) ?? fail('percentile distribution');
    const figures = { test, rps, p50Ms: Number(summary[3]), p99Ms: Number(summary[5]), p999Ms: tail.ms };
    if (![figures.rps, figures.p50Ms, figures.p99Ms, figures.p999Ms].every(Number.isFinite)) fail('numeric figures');
    parsed.push(figures);
  }
  return parsed;
}

interface RedisWorkloadSpec {
  id: WorkloadId;
  title: string;
  rows: RowSpec[];
  /** redis-benchmark arguments besides host, port and precision. */
  args(requests: number): string[];
  requests(context: WorkloadContext): number;
  /** Requests (or connections) redis-benchmark makes in all, for `requests` per test. */
  operations(requests: number): number;
  /** The row of the proxy pair's CPU per operation. */
  cpuRow: RowSpec;
  /** Figures by metric id from the parsed report. */
  figures(lines: RedisBenchmarkLine[]): Record<string, number>;
}

function redisStep(spec: RedisWorkloadSpec): DataPathStep {
  return {
    id: spec.id,
    title: spec.title,
    app: 'redis',
    rows: [...spec.rows, spec.cpuRow],
    async measure(context: WorkloadContext, pair: RunningContender): Promise<Record<string, Cell>> {
      const requests = spec.requests(context);
      const args = ['-h', LOOPBACK, '-p', String(pair.clientPort), '--precision', '3', ...spec.args(requests)];
      const timeoutMs = BASE_TIMEOUT_MS + requests * TIMEOUT_PER_REQUEST_MS * 2;
      const cpu = proxyCpuMeter(pair, context.ticksPerSecond);
      await cpu.start();
      const result = await context.supervisor.run('redis-benchmark', toolPath(context.tools, 'redis-benchmark'), args, timeoutMs, { manyFiles: true });
      const cpuSeconds = await cpu.stop();
      if (result.code !== 0) throw new Error(`redis-benchmark exited ${result.code}: ${(result.stderr.trim() || result.stdout.trim()).slice(-300)}`);
      const lines = parseRedisBenchmarkReport(result.stdout);
      const microsPerOperation = typeof cpuSeconds === 'string' ? cpuSeconds : (cpuSeconds * 1e6) / spec.operations(requests);
      return { ...spec.figures(lines), [spec.cpuRow.metric]: microsPerOperation };
    },
  };
}

/** The fresh-pair workload of a step: one redis-server, a new pair per contender and round. */
function redisWorkload(step: DataPathStep): Workload {
  return {
    id: step.id,
    title: step.title,
    async run(context: WorkloadContext) {
      const rows = rowsOf(step.id, step.rows);
      const redis = await startRedis(context.supervisor, context.tools);
      try {
        await measureEachContender(context, step.id, rows, redis.port, (pair) => step.measure(context, pair), context.sizes.repeats);
      } finally {
        await redis.process.stop();
      }
      return rows;
    },
  };
}

function line(lines: RedisBenchmarkLine[], test: string): RedisBenchmarkLine {
  const found = lines.find((candidate) => candidate.test === test);
  if (found === undefined) throw new Error(`redis-benchmark printed no ${test} report`);
  return found;
}

export const manyConnectionsStep = redisStep({
  id: 'rr50',
  title: 'request/response, 50 connections (redis-benchmark SET, GET)',
  rows: [
    { metric: 'rr50.set.rps', label: '50 conns: SET requests/s', unit: 'req/s', better: 'higher' },
    { metric: 'rr50.get.rps', label: '50 conns: GET requests/s', unit: 'req/s', better: 'higher' },
    { metric: 'rr50.set.p50', label: '50 conns: SET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr50.set.p99', label: '50 conns: SET p99', unit: 'ms', better: 'lower' },
    { metric: 'rr50.get.p50', label: '50 conns: GET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr50.get.p99', label: '50 conns: GET p99', unit: 'ms', better: 'lower' },
    { metric: 'rr50.get.p999', label: '50 conns: GET p99.9', unit: 'ms', better: 'lower' },
  ],
  args: (requests) => ['-t', 'set,get', '-c', '50', '-n', String(requests)],
  requests: (context) => context.sizes.rr50Requests,
  operations: (requests) => 2 * requests,
  cpuRow: { metric: 'rr50.cpu_per_request', label: '50 conns: CPU of the proxy processes per request', unit: 'CPU µs', better: 'lower' },
  figures: (lines) => {
    const [set, get] = [line(lines, 'SET'), line(lines, 'GET')];
    return {
      'rr50.set.rps': set.rps,
      'rr50.get.rps': get.rps,
      'rr50.set.p50': set.p50Ms,
      'rr50.set.p99': set.p99Ms,
      'rr50.get.p50': get.p50Ms,
      'rr50.get.p99': get.p99Ms,
      'rr50.get.p999': get.p999Ms,
    };
  },
});

export const oneConnectionStep = redisStep({
  id: 'rr1',
  title: 'latency, one connection (redis-benchmark GET)',
  rows: [
    { metric: 'rr1.get.p50', label: '1 conn: GET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr1.get.p99', label: '1 conn: GET p99', unit: 'ms', better: 'lower' },
    { metric: 'rr1.get.p999', label: '1 conn: GET p99.9', unit: 'ms', better: 'lower' },
    { metric: 'rr1.get.rps', label: '1 conn: GET requests/s', unit: 'req/s', better: 'higher' },
  ],
  args: (requests) => ['-t', 'get', '-c', '1', '-n', String(requests)],
  requests: (context) => context.sizes.rr1Requests,
  operations: (requests) => requests,
  cpuRow: { metric: 'rr1.cpu_per_request', label: '1 conn: CPU of the proxy processes per request', unit: 'CPU µs', better: 'lower' },
  figures: (lines) => {
    const get = line(lines, 'GET');
    return { 'rr1.get.p50': get.p50Ms, 'rr1.get.p99': get.p99Ms, 'rr1.get.p999': get.p999Ms, 'rr1.get.rps': get.rps };
  },
});

export const churnStep = redisStep({
  id: 'churn',
  title: 'connection churn (redis-benchmark -k 0, a new connection per request)',
  rows: [
    { metric: 'churn.rps', label: 'churn: new connections (requests)/s', unit: 'req/s', better: 'higher' },
    { metric: 'churn.p99', label: 'churn: p99 incl. connect', unit: 'ms', better: 'lower' },
  ],
  args: (requests) => ['-k', '0', '-c', '20', '-t', 'ping_inline', '-n', String(requests)],
  requests: (context) => context.sizes.churnRequests,
  operations: (requests) => requests,
  cpuRow: { metric: 'churn.cpu_per_connection', label: 'churn: CPU of the proxy processes per connection', unit: 'CPU µs', better: 'lower' },
  figures: (lines) => {
    const ping = line(lines, 'PING_INLINE');
    return { 'churn.rps': ping.rps, 'churn.p99': ping.p99Ms };
  },
});

export const manyConnectionsWorkload = redisWorkload(manyConnectionsStep);
export const oneConnectionWorkload = redisWorkload(oneConnectionStep);
export const churnWorkload = redisWorkload(churnStep);
