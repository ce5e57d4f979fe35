/** The apps behind the contenders: redis-server, an iperf3 server and a small echo server. */
import { fileURLToPath } from 'node:url';
import { LOOPBACK, pickFreePort, waitForPort } from './net.js';
import type { ProcessSupervisor, SupervisedProcess } from './supervisor.js';
import type { ToolPaths } from './system.js';
import { toolPath } from './system.js';

const APP_START_TIMEOUT_MS = 20_000;
/** Above the largest connection count of any workload. */
const REDIS_MAX_CLIENTS = 30_000;

export interface RunningApp {
  port: number;
  process: SupervisedProcess;
}

/** A throwaway redis-server: no persistence, loopback only. */
export async function startRedis(supervisor: ProcessSupervisor, tools: ToolPaths, port?: number): Promise<RunningApp> {
  port ??= await pickFreePort();
  const args = ['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--maxclients', String(REDIS_MAX_CLIENTS)];
  const proc = supervisor.spawn('redis-server', toolPath(tools, 'redis-server'), args, { manyFiles: true });
  await waitForPort(port, APP_START_TIMEOUT_MS, 'redis-server');
  return { port, process: proc };
}

/**
 * `iperf3 -s`: serves one test at a time, which is how the workload uses it. `port` (and
 * redis's) lets the long-lived mode put either app behind the same pair in turn.
 */
export async function startIperfServer(supervisor: ProcessSupervisor, tools: ToolPaths, port?: number): Promise<RunningApp> {
  port ??= await pickFreePort();
  const proc = supervisor.spawn('iperf3 server', toolPath(tools, 'iperf3'), ['-s', '-p', String(port), '--bind', LOOPBACK]);
  await waitForPort(port, APP_START_TIMEOUT_MS, 'iperf3 server');
  return { port, process: proc };
}

/** The echo server of clients/echo-server.ts, in its own process. */
export async function startEchoServer(supervisor: ProcessSupervisor): Promise<RunningApp> {
  const script = fileURLToPath(new URL('./clients/echo-server.js', import.meta.url));
  const proc = supervisor.spawn('echo server', process.execPath, [script], { manyFiles: true });
  const [, port] = await proc.waitForOutput(/echo listening on (\d+)/, APP_START_TIMEOUT_MS);
  return { port: Number(port), process: proc };
}
