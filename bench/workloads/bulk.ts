/** Bulk throughput: one iperf3 stream through the contender for a few seconds. */
import { startIperfServer } from '../apps.js';
import type { RunningContender } from '../contenders/contender.js';
import { LOOPBACK } from '../net.js';
import type { Cell } from '../results.js';
import { toolPath } from '../system.js';
import type { DataPathStep, Workload, WorkloadContext } from './workload.js';
import { measureEachContender, proxyCpuMeter, rowsOf } from './workload.js';

/** Extra time iperf3 gets beyond its test length (connection set-up, results exchange). */
const IPERF_SLACK_MS = 30_000;

interface IperfReport {
  error?: string;
  end?: { sum_received?: { bits_per_second?: number; bytes?: number } };
}

/** One iperf3 test against a running pair (whose app is an iperf3 server). */
export const bulkStep: DataPathStep = {
  id: 'bulk',
  title: 'bulk throughput (iperf3, one stream)',
  app: 'iperf3',
  // `iperf3 -s` needs a moment after a test before it takes the next one; back to back, as the
  // long-lived mode runs the contenders, the next test's control connection may be reset.
  freshAppEachTime: true,
  rows: [
    { metric: 'bulk.throughput', label: 'bulk throughput, 1 stream', unit: 'GB/s', better: 'higher' },
    { metric: 'bulk.cpu_per_gb', label: 'bulk: CPU of the proxy processes per GB', unit: 'CPU s/GB', better: 'lower' },
  ],
  async measure(context: WorkloadContext, pair: RunningContender): Promise<Record<string, Cell>> {
    const seconds = context.sizes.bulkSeconds;
    // The control connection and the data connection both go through the proxy port.
    const cpu = proxyCpuMeter(pair, context.ticksPerSecond);
    await cpu.start();
    const args = ['-c', LOOPBACK, '-p', String(pair.clientPort), '-t', String(seconds), '-J', '--connect-timeout', '10000'];
    const result = await context.supervisor.run('iperf3 client', toolPath(context.tools, 'iperf3'), args, seconds * 1000 + IPERF_SLACK_MS);
    const cpuSeconds = await cpu.stop();
    const report = parseIperfReport(result.stdout);
    if (report.error !== undefined) throw new Error(`iperf3: ${report.error}`);
    const bitsPerSecond = report.end?.sum_received?.bits_per_second;
    if (bitsPerSecond === undefined || !(bitsPerSecond > 0)) throw new Error(`iperf3 reported no throughput: ${result.stderr.trim()}`);
    const bytes = report.end?.sum_received?.bytes ?? 0;
    return {
      'bulk.throughput': bitsPerSecond / 8 / 1e9,
      'bulk.cpu_per_gb': typeof cpuSeconds === 'string' ? cpuSeconds : bytes > 0 ? cpuSeconds / (bytes / 1e9) : 'no bytes received',
    };
  },
};

export const bulkWorkload: Workload = {
  id: 'bulk',
  title: bulkStep.title,
  async run(context: WorkloadContext) {
    const rows = rowsOf('bulk', bulkStep.rows);
    const server = await startIperfServer(context.supervisor, context.tools);
    try {
      await measureEachContender(context, 'bulk', rows, server.port, (pair) => bulkStep.measure(context, pair), context.sizes.repeats);
    } finally {
      await server.process.stop();
    }
    return rows;
  },
};

function parseIperfReport(stdout: string): IperfReport {
  try {
    return JSON.parse(stdout) as IperfReport;
  } catch {
    throw new Error(`iperf3 printed no JSON report: ${stdout.slice(0, 200)}`);
  }
}
