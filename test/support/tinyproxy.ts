// A real tinyproxy (the Debian package) as the HTTP CONNECT egress proxy of link tests.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './ports.js';

/** @default 10_000 */
const START_TIMEOUT_MS = 10_000;

export interface Tinyproxy {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly port: number;
  /** Stops the proxy (SIGTERM to the process started here) and removes its directory. */
  stop(): Promise<void>;
}

export interface TinyproxyOptions {
  /**
   * The only ports CONNECT may reach; others get 403. tinyproxy allows every port when its
   * config has no ConnectPort line. @default every port
   */
  connectPorts?: number[];
}

/**
 * Starts tinyproxy on a free loopback port and resolves once it accepts connections (its own
 * log line says so). Rejects, so that the test fails, when tinyproxy is not installed.
 */
export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const dir = await mkdtemp(join(tmpdir(), 'trellis-tinyproxy-'));
  const port = await freeLoopbackPort();
  const config = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    'Allow 127.0.0.1',
    'MaxClients 64',
    'LogLevel Info',
    ...(options.connectPorts ?? []).map((allowed) => `ConnectPort ${allowed}`),
  ];
  const configPath = join(dir, 'tinyproxy.conf');
  await writeFile(configPath, `${config.join('\n')}\n`);
  const child = spawn('tinyproxy', ['-d', '-c', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await started(child);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, port, stop };
}

function started(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`tinyproxy did not start within ${START_TIMEOUT_MS} ms:\n${log}`)), START_TIMEOUT_MS);
    const onLog = (chunk: Buffer): void => {
      log += chunk.toString();
      if (log.includes('Accepting connections')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onLog);
    child.stderr?.on('data', onLog);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`cannot run tinyproxy (apt-get install tinyproxy): ${error.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`tinyproxy exited (${code ?? signal}) before accepting connections:\n${log}`));
    });
  });
}
