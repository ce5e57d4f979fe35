/**
 * Request/response workloads against a real redis-server, driven by redis-benchmark: many
 * connections, one connection, and a new connection per request (churn).
 */
import { startRedis } from '../apps.js';
import type { WorkloadId } from '../results.js';
import { LOOPBACK } from '../net.js';
import { clockTicksPerSecond, toolPath } from '../system.js';
import type { RowSpec, Workload, WorkloadContext } from './workload.js';
import { measureEachContender, proxyCpuMeter, rowsOf } from './workload.js';

/** A bound on a redis-benchmark run: generous, so only a stall reaches it. */
const BASE_TIMEOUT_MS = 60_000;
const TIMEOUT_PER_REQUEST_MS = 2;

/** One line of `redis-benchmark --csv`. */
export interface RedisBenchmarkLine {
  test: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Parses `redis-benchmark --csv` (Redis 7: test, rps, avg, min, p50, p95, p99, max).
 * @throws Error when a line is missing or not numeric.
 */
export function parseRedisBenchmarkCsv(stdout: string): RedisBenchmarkLine[] {
  const lines = stdout.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('"'));
  const [header, ...rest] = lines.map((line) => line.split(',').map((field) => field.replace(/^"|"$/g, '')));
  const column = (name: string): number => {
    const index = header?.indexOf(name) ?? -1;
    if (index < 0) throw new Error(`redis-benchmark CSV has no "${name}" column: ${stdout.slice(0, 200)}`);
    return index;
  };
  const [rps, p50, p99] = [column('rps'), column('p50_latency_ms'), column('p99_latency_ms')];
  return rest.map((fields) => {
    const number = (index: number): number => {
      const value = Number(fields[index]);
      if (!Number.isFinite(value)) throw new Error(`redis-benchmark CSV line is not numeric: ${fields.join(',')}`);
      return value;
    };
    return { test: fields[0] ?? '', rps: number(rps), p50Ms: number(p50), p99Ms: number(p99) };
  });
}

interface RedisWorkloadSpec {
  id: WorkloadId;
  title: string;
  rows: RowSpec[];
  /** redis-benchmark arguments besides host, port and CSV output. */
  args(requests: number): string[];
  requests(context: WorkloadContext): number;
  /** Requests (or connections) redis-benchmark makes in all, for `requests` per test. */
  operations(requests: number): number;
  /** The row of the proxy pair's CPU per operation. */
  cpuRow: RowSpec;
  /** Figures by metric id from the parsed lines. */
  figures(lines: RedisBenchmarkLine[]): Record<string, number>;
}

function redisWorkload(spec: RedisWorkloadSpec): Workload {
  return {
    id: spec.id,
    title: spec.title,
    async run(context: WorkloadContext) {
      const rows = rowsOf(spec.id, [...spec.rows, spec.cpuRow]);
      const redis = await startRedis(context.supervisor, context.tools);
      const requests = spec.requests(context);
      const ticksPerSecond = clockTicksPerSecond();
      try {
        await measureEachContender(context, spec.id, rows, redis.port, async (pair) => {
          const args = ['-h', LOOPBACK, '-p', String(pair.clientPort), '--csv', '--precision', '3', ...spec.args(requests)];
          const timeoutMs = BASE_TIMEOUT_MS + requests * TIMEOUT_PER_REQUEST_MS * 2;
          const cpu = proxyCpuMeter(pair, ticksPerSecond);
          await cpu.start();
          const result = await context.supervisor.run('redis-benchmark', toolPath(context.tools, 'redis-benchmark'), args, timeoutMs, { manyFiles: true });
          const lines = parseRedisBenchmarkCsv(result.stdout);
          if (result.code !== 0 || lines.length === 0) throw new Error(`redis-benchmark exited ${result.code}: ${(result.stderr.trim() || result.stdout.trim()).slice(0, 300)}`);
          const cpuSeconds = await cpu.stop();
          const microsPerOperation = cpuSeconds === undefined ? 'n/a (no proxy)' : (cpuSeconds * 1e6) / spec.operations(requests);
          return { ...spec.figures(lines), [spec.cpuRow.metric]: microsPerOperation };
        }, context.sizes.repeats);
      } finally {
        await redis.process.stop();
      }
      return rows;
    },
  };
}

function line(lines: RedisBenchmarkLine[], test: string): RedisBenchmarkLine {
  const found = lines.find((candidate) => candidate.test === test);
  if (found === undefined) throw new Error(`redis-benchmark printed no ${test} line`);
  return found;
}

export const manyConnectionsWorkload = redisWorkload({
  id: 'rr50',
  title: 'request/response, 50 connections (redis-benchmark SET, GET)',
  rows: [
    { metric: 'rr50.set.rps', label: '50 conns: SET requests/s', unit: 'req/s', better: 'higher' },
    { metric: 'rr50.get.rps', label: '50 conns: GET requests/s', unit: 'req/s', better: 'higher' },
    { metric: 'rr50.set.p50', label: '50 conns: SET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr50.set.p99', label: '50 conns: SET p99', unit: 'ms', better: 'lower' },
    { metric: 'rr50.get.p50', label: '50 conns: GET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr50.get.p99', label: '50 conns: GET p99', unit: 'ms', better: 'lower' },
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
    };
  },
});

export const oneConnectionWorkload = redisWorkload({
  id: 'rr1',
  title: 'latency, one connection (redis-benchmark GET)',
  rows: [
    { metric: 'rr1.get.p50', label: '1 conn: GET p50', unit: 'ms', better: 'lower' },
    { metric: 'rr1.get.p99', label: '1 conn: GET p99', unit: 'ms', better: 'lower' },
    { metric: 'rr1.get.rps', label: '1 conn: GET requests/s', unit: 'req/s', better: 'higher' },
  ],
  args: (requests) => ['-t', 'get', '-c', '1', '-n', String(requests)],
  requests: (context) => context.sizes.rr1Requests,
  operations: (requests) => requests,
  cpuRow: { metric: 'rr1.cpu_per_request', label: '1 conn: CPU of the proxy processes per request', unit: 'CPU µs', better: 'lower' },
  figures: (lines) => {
    const get = line(lines, 'GET');
    return { 'rr1.get.p50': get.p50Ms, 'rr1.get.p99': get.p99Ms, 'rr1.get.rps': get.rps };
  },
});

export const churnWorkload = redisWorkload({
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
