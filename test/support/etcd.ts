/**
 * A real etcd for tests (Debian package `etcd-server`, which scripts/test.sh installs): one
 * member on free loopback ports with its own data directory, that a test can kill and
 * restart on the same data. A missing binary fails the test; it never skips it.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeLoopbackPort } from './ports.js';

/** Where Debian's etcd-server puts the binary; `TRELLIS_ETCD_BIN` overrides it. */
const DEFAULT_ETCD_BIN = '/usr/bin/etcd';
const READY_TIMEOUT_MS = 20_000;
const KEPT_OUTPUT_CHARS = 16 * 1024;

/** A running (or killed) etcd member. */
export interface TestEtcd {
  /** `http://127.0.0.1:PORT`, the same across restarts. */
  readonly url: string;
  readonly dataDir: string;
  /** Sends `signal` and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts etcd again on the same ports and data directory, once the previous one is gone. */
  restart(): Promise<void>;
  /** Kills etcd and removes its data directory. Safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * Starts etcd and resolves once it answers `/health`.
 * @throws Error when the binary is missing or etcd does not become healthy in time.
 */
export async function startEtcd(): Promise<TestEtcd> {
  const binary = process.env['TRELLIS_ETCD_BIN'] ?? DEFAULT_ETCD_BIN;
  try {
    await access(binary, constants.X_OK);
  } catch {
    throw new Error(`etcd is not installed at ${binary}: install the Debian package etcd-server (scripts/test.sh does)`);
  }
  const root = await mkdtemp(join(tmpdir(), 'trellis-etcd-'));
  const dataDir = join(root, 'data');
  const clientPort = await freeLoopbackPort();
  const peerPort = await freeLoopbackPort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peerUrl = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name=default',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=default=${peerUrl}`,
    // Fast elections for a single member; this also lowers the shortest lease to 1 s.
    '--heartbeat-interval=50',
    '--election-timeout=500',
    '--log-level=warn',
  ];
  let child: ChildProcess | undefined;
  let output = '';
  const killOnExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const launch = async (): Promise<void> => {
    output = '';
    const started = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString('utf8')).slice(-KEPT_OUTPUT_CHARS);
    };
    started.stdout?.on('data', keep);
    started.stderr?.on('data', keep);
    await waitHealthy(url, started, () => output);
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const running = child;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = once(running, 'exit');
    running.kill(signal);
    await exited;
  };

  try {
    await launch();
  } catch (err) {
    await kill();
    process.off('exit', killOnExit);
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    url,
    dataDir,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await kill();
      process.off('exit', killOnExit);
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function waitHealthy(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`etcd exited (${child.exitCode ?? child.signalCode}) before it was healthy:\n${output()}`);
    }
    if (await isHealthy(url)) return;
    if (Date.now() > deadline) throw new Error(`etcd at ${url} was not healthy within ${READY_TIMEOUT_MS} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function isHealthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(`${url}/health`, { timeout: 1000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

/** The etcd binary tests run: Debian's, or `TRELLIS_ETCD_BIN`. */
export function etcdBinary(): string {
  return process.env['TRELLIS_ETCD_BIN'] ?? DEFAULT_ETCD_BIN;
}

/**
 * The arguments of a one-member etcd on `clientUrl` and `peerUrl` with its data in `dataDir`,
 * for a test that runs etcd itself (in a network namespace, say): the same fast elections as
 * {@link startEtcd}, and zap logs on stdout, where `serving client traffic` says it is up.
 */
export function etcdMemberArgs(dataDir: string, clientUrl: string, peerUrl: string): string[] {
  return [
    '--name=default',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${clientUrl}`,
    `--advertise-client-urls=${clientUrl}`,
    `--listen-peer-urls=${peerUrl}`,
    `--initial-advertise-peer-urls=${peerUrl}`,
    `--initial-cluster=default=${peerUrl}`,
    '--heartbeat-interval=50',
    '--election-timeout=500',
    '--logger=zap',
    '--log-outputs=stdout',
    '--log-level=info',
  ];
}
