/**
 * Head-of-line blocking: an echo of a fixed size through the pair, alone and then beside a
 * connection whose reader has stopped. Through Trellis both are streams of one link, so this
 * is the test of per-stream flow control: the issue asks for the echo beside the stalled
 * stream to keep within 10 % of its speed alone.
 */
import { fileURLToPath } from 'node:url';
import { startEchoServer } from '../apps.js';
import type { Workload, WorkloadContext } from './workload.js';
import { measureEachContender, proxyCpuMeter, rowsOf } from './workload.js';

/** A bound on one load-generator run: generous, so only a stall reaches it. */
const RUN_TIMEOUT_MS = 120_000;

interface BulkReport {
  bytes?: number;
  seconds?: number;
  stalledBytesTaken?: number;
  error?: string;
}

export const headOfLineWorkload: Workload = {
  id: 'hol',
  title: 'head-of-line blocking (an echo beside a connection whose reader stopped)',
  async run(context: WorkloadContext) {
    const rows = rowsOf('hol', [
      { metric: 'hol.alone', label: 'echo alone, one connection', unit: 'MB/s', better: 'higher' },
      { metric: 'hol.beside', label: 'echo beside a stalled connection', unit: 'MB/s', better: 'higher' },
      { metric: 'hol.ratio', label: 'echo beside a stalled connection ÷ alone', unit: '×', better: 'higher' },
      { metric: 'hol.stalled_taken', label: 'bytes the path took of the stalled connection', unit: 'MB', better: 'lower' },
      { metric: 'hol.cpu_per_gb', label: 'hol: CPU of the proxy processes per GB carried (there and back count)', unit: 'CPU s/GB', better: 'lower' },
    ]);
    const echo = await startEchoServer(context.supervisor);
    const script = fileURLToPath(new URL('../clients/bulk-beside-stall.js', import.meta.url));
    const bytes = context.sizes.holBytes;
    const runOnce = async (port: number, mode: 'alone' | 'stalled'): Promise<Required<Pick<BulkReport, 'seconds'>> & BulkReport> => {
      const result = await context.supervisor.run(`echo ${mode}`, process.execPath, [script, String(port), String(bytes), mode, String(RUN_TIMEOUT_MS)], RUN_TIMEOUT_MS + 10_000);
      const report = parseReport(result.stdout);
      if (report.error !== undefined || report.seconds === undefined || result.code !== 0) {
        throw new Error(`echo ${mode}: ${report.error ?? (result.stderr.trim() || `exit ${result.code}`)}`);
      }
      return { ...report, seconds: report.seconds };
    };
    try {
      await measureEachContender(context, 'hol', rows, echo.port, async (pair) => {
        // A first echo warms the pair up (a JIT compiles the forwarding path), so that neither
        // measured echo pays for it.
        await runOnce(pair.clientPort, 'alone');
        const cpu = proxyCpuMeter(pair, context.ticksPerSecond);
        await cpu.start();
        const alone = await runOnce(pair.clientPort, 'alone');
        const beside = await runOnce(pair.clientPort, 'stalled');
        const cpuSeconds = await cpu.stop();
        // Each echo carries its bytes through the pair twice (there and back).
        const carriedGB = (2 * 2 * bytes) / 1e9;
        const [aloneRate, besideRate] = [bytes / alone.seconds / 1e6, bytes / beside.seconds / 1e6];
        return {
          'hol.alone': aloneRate,
          'hol.beside': besideRate,
          'hol.ratio': besideRate / aloneRate,
          'hol.stalled_taken': (beside.stalledBytesTaken ?? 0) / 1e6,
          'hol.cpu_per_gb': typeof cpuSeconds === 'string' ? cpuSeconds : cpuSeconds / carriedGB,
        };
      }, context.sizes.repeats);
    } finally {
      await echo.process.stop();
    }
    return rows;
  },
};

function parseReport(stdout: string): BulkReport {
  const line = stdout.trim().split('\n').at(-1) ?? '';
  try {
    return JSON.parse(line) as BulkReport;
  } catch {
    return { error: `no report: ${stdout.slice(0, 200)}` };
  }
}
