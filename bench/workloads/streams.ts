/**
 * Many streams: N concurrent connections held through one proxy pair (a client process of its
 * own), 1 KiB echoed on every one, and the peak memory of each proxy side meanwhile.
 */
import { fileURLToPath } from 'node:url';
import { startEchoServer } from '../apps.js';
import type { PhaseReport } from '../clients/many-connections.js';
import type { Cell } from '../results.js';
import type { SupervisedProcess } from '../supervisor.js';
import { readProcessMemory, readThreadCount } from '../system.js';
import type { Workload, WorkloadContext } from './workload.js';
import { measureEachContender, proxyCpuMeter, rowsOf } from './workload.js';

/** Time allowed to open all connections, and again to echo on all of them. */
const PHASE_TIMEOUT_MS = 90_000;
/** The client gives up holding after this, should the harness never say `close`. */
const HOLD_TIMEOUT_MS = 60_000;

export const streamsWorkload: Workload = {
  id: 'streams',
  title: 'many streams (concurrent connections held through one pair)',
  async run(context: WorkloadContext) {
    const count = context.sizes.streams;
    const rows = rowsOf('streams', [
      { metric: 'streams.held', label: `streams held and echoed (of ${count})`, unit: 'conns', better: 'higher' },
      { metric: 'streams.seconds', label: `open ${count} + echo 1 KiB on each`, unit: 's', better: 'lower' },
      { metric: 'streams.peak_rss.client', label: `peak RSS, client side, ${count} streams`, unit: 'MB', better: 'lower' },
      { metric: 'streams.peak_rss.server', label: `peak RSS, server side, ${count} streams`, unit: 'MB', better: 'lower' },
      { metric: 'streams.cpu_per_connection', label: 'streams: CPU of the proxy processes per connection opened and echoed', unit: 'CPU µs', better: 'lower' },
    ]);
    const echo = await startEchoServer(context.supervisor);
    const script = fileURLToPath(new URL('../clients/many-connections.js', import.meta.url));
    try {
      await measureEachContender(context, 'streams', rows, echo.port, async (pair, contender) => {
        const args = [script, String(pair.clientPort), String(count), String(context.sizes.streamPayloadBytes), String(PHASE_TIMEOUT_MS), String(HOLD_TIMEOUT_MS)];
        const cpu = proxyCpuMeter(pair, context.ticksPerSecond);
        await cpu.start();
        const client = context.supervisor.spawn('many-connections client', process.execPath, args, { manyFiles: true, stdinPipe: true });
        try {
          const connected = await waitForPhase(client, 'connected');
          context.progress(`    ${connected.ok} of ${count} connected in ${(connected.ms / 1000).toFixed(1)} s${connected.firstError === undefined ? '' : ` (first error: ${connected.firstError})`}`);
          const echoed = await waitForPhase(client, 'echoed');
          const cpuSeconds = await cpu.stop();
          context.progress(`    ${echoed.ok} echoed in ${(echoed.ms / 1000).toFixed(1)} s, ${echoed.open} still open`);
          const seconds = (connected.ms + echoed.ms) / 1000;
          const figures: Record<string, Cell> = {
            'streams.seconds': echoed.ok === count ? seconds : `not all held; ${seconds.toFixed(1)} s until the rest failed or timed out`,
          };
          figures['streams.held'] = echoed.ok === count ? count : `reached ${echoed.ok} of ${count}: ${whyNotAll(context, pair.sides !== undefined && contender.id !== 'trellis', count, echoed.firstError ?? connected.firstError)}`;
          figures['streams.cpu_per_connection'] = typeof cpuSeconds === 'string' ? cpuSeconds : echoed.ok > 0 ? (cpuSeconds * 1e6) / echoed.ok : 'no connection echoed';
          if (pair.sides === undefined) {
            figures['streams.peak_rss.client'] = 'n/a (no proxy)';
            figures['streams.peak_rss.server'] = 'n/a (no proxy)';
          } else {
            figures['streams.peak_rss.client'] = await peakRss(pair.sides.client);
            figures['streams.peak_rss.server'] = await peakRss(pair.sides.server);
            if (echoed.ok < count) context.observe(`streams: ${pair.sides.client.name}: ${await describeThreads(pair.sides.client)}; ${echoed.firstError ?? ''}`);
          }
          return figures;
        } finally {
          client.tell('close');
          await Promise.race([client.exited(), new Promise((resolve) => setTimeout(resolve, 10_000))]);
          await client.stop();
        }
      });
    } finally {
      await echo.process.stop();
    }
    return rows;
  },
};

/**
 * Why a contender held fewer connections than asked. A proxy that dials one connection per
 * accepted one needs two descriptors per connection in each side's process.
 */
function whyNotAll(context: WorkloadContext, twoFilesPerConnection: boolean, count: number, firstError: string | undefined): string {
  const error = firstError ?? 'no error reported';
  if (!twoFilesPerConnection || 2 * count < context.openFilesLimit) return error;
  return `this machine allows ${context.openFilesLimit} open files per process and each side holds two per connection (${error})`;
}

async function waitForPhase(client: SupervisedProcess, event: PhaseReport['event']): Promise<PhaseReport> {
  const [line] = await client.waitForOutput(new RegExp(`^\\{"event":"${event}".*$`, 'm'), PHASE_TIMEOUT_MS + 30_000);
  return JSON.parse(line) as PhaseReport;
}

async function peakRss(side: SupervisedProcess): Promise<Cell> {
  try {
    return (await readProcessMemory(side.pid)).peakRssMB;
  } catch {
    return `process gone (${side.lastWords(120)})`;
  }
}

async function describeThreads(side: SupervisedProcess): Promise<string> {
  try {
    return `${await readThreadCount(side.pid)} threads`;
  } catch {
    return 'process gone';
  }
}
