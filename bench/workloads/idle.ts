/** Idle memory: each proxy side's resident set after start and one echoed connection, settled. */
import { startEchoServer } from '../apps.js';
import { echoOnce } from '../net.js';
import type { Cell } from '../results.js';
import { readProcessMemory } from '../system.js';
import type { Workload, WorkloadContext } from './workload.js';
import { measureEachContender, rowsOf } from './workload.js';

const ECHO_BYTES = 1024;
const ECHO_TIMEOUT_MS = 15_000;

export const idleWorkload: Workload = {
  id: 'idle',
  title: 'idle sidecar memory (after start and one connection)',
  async run(context: WorkloadContext) {
    const rows = rowsOf('idle', [
      { metric: 'idle.rss.client', label: 'idle RSS, client side', unit: 'MB', better: 'lower' },
      { metric: 'idle.rss.server', label: 'idle RSS, server side', unit: 'MB', better: 'lower' },
    ]);
    const echo = await startEchoServer(context.supervisor);
    try {
      await measureEachContender(context, 'idle', rows, echo.port, async (pair) => {
        await echoOnce(pair.clientPort, Buffer.alloc(ECHO_BYTES, 0x62), ECHO_TIMEOUT_MS);
        if (pair.sides === undefined) return { 'idle.rss.client': 'n/a (no proxy)', 'idle.rss.server': 'n/a (no proxy)' };
        // Settling lets a garbage-collected runtime give back what start-up used.
        await new Promise((resolve) => setTimeout(resolve, context.sizes.idleSettleSeconds * 1000));
        const figures: Record<string, Cell> = {
          'idle.rss.client': (await readProcessMemory(pair.sides.client.pid)).rssMB,
          'idle.rss.server': (await readProcessMemory(pair.sides.server.pid)).rssMB,
        };
        return figures;
      });
    } finally {
      await echo.process.stop();
    }
    return rows;
  },
};
