// Shared setup of the across-clouds acceptance tests: a topology of clouds in network namespaces
// (test/support/netns.ts), and real trellis processes (control plane, gateways, sidecars) and apps
// (test/support/clouds-apps.ts) inside its hosts.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClientResult, ServerRecord } from './clouds-apps.js';
import type { HostRef, Topology, TopologySpec } from './netns.js';
import { repoRoot, trellisBin } from './processes.js';

export const appsScript = fileURLToPath(new URL('./clouds-apps.js', import.meta.url));
export const probeScript = fileURLToPath(new URL('./tunnel-probe.js', import.meta.url));

export const CP_PORT = 7400;
export const GATEWAY_PORT = 7600;
export const GATEWAY_ADMIN = '127.0.0.1:9600';
export const SIDECAR_PORT = 7500;
export const SIDECAR_ADMIN = '127.0.0.1:9500';
export const APP_PORT = 8000;
/** The upstream port of service `echo-b` in a sidecar (127.0.0.1 of its host), `echo-c` next. */
export const UPSTREAM_PORTS: Readonly<Record<string, number>> = { 'echo-b': 7001, 'echo-c': 7002, 'echo-d': 7003, 'echo-e': 7004, 'echo-dw': 7005 };

/**
 * Cloud A (a1, a2 sidecars; ga1, ga2 gateways), cloud B (b1, b2; gb), private network C (c1; gc,
 * which takes no inbound connection from the WAN), a WAN between the gateways, and the control
 * plane's host `cp` on every network. No host routes between networks.
 */
export const CLOUDS_SPEC: TopologySpec = {
  networks: { cloudA: '10.71.1.0/24', cloudB: '10.71.2.0/24', netC: '10.71.3.0/24', wan: '10.71.100.0/24' },
  hosts: {
    cp: { cloudA: '10.71.1.100', cloudB: '10.71.2.100', netC: '10.71.3.100', wan: '10.71.100.100' },
    a1: { cloudA: '10.71.1.11' },
    a2: { cloudA: '10.71.1.12' },
    ga1: { cloudA: '10.71.1.2', wan: '10.71.100.2' },
    ga2: { cloudA: '10.71.1.3', wan: '10.71.100.3' },
    b1: { cloudB: '10.71.2.11' },
    b2: { cloudB: '10.71.2.12' },
    gb: { cloudB: '10.71.2.2', wan: '10.71.100.4' },
    c1: { netC: '10.71.3.11' },
    gc: { netC: '10.71.3.2', wan: '10.71.100.5' },
  },
};

/** A process running inside a host, with what it printed so far. */
export class NsProcess {
  readonly child: ChildProcess;
  readonly host: string;
  readonly label: string;
  #stdout = '';
  #stderr = '';
  readonly #exited: Promise<number | string>;

  constructor(child: ChildProcess, host: string, label: string) {
    this.child = child;
    this.host = host;
    this.label = label;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.#stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr += chunk));
    this.#exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve((code ?? signal) as number | string)));
  }

  /** The pid of the process itself: `ip netns exec` execs the command in place (checked against /proc/PID/cmdline). */
  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined) throw new Error(`${this.label} has no pid`);
    return pid;
  }

  stdout(): string {
    return this.#stdout;
  }

  stderr(): string {
    return this.#stderr;
  }

  exited(): Promise<number | string> {
    return this.#exited;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The JSON lines printed so far. */
  lines<T>(): T[] {
    return this.#stdout
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as T);
  }

  /** Resolves with the first stdout match; rejects if the process exits first or after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs = 30_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const match = pattern.exec(this.#stdout);
        if (match === null) return false;
        cleanup();
        resolve(match);
        return true;
      };
      const onExit = (): void => {
        // Let the last chunks of output arrive.
        setImmediate(() => {
          if (check()) return;
          cleanup();
          reject(new Error(`${this.label} in ${this.host} exited before printing ${pattern}; stdout:\n${tail(this.#stdout)}\nstderr:\n${tail(this.#stderr)}`));
        });
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.label} in ${this.host} did not print ${pattern} within ${timeoutMs} ms; stdout:\n${tail(this.#stdout)}\nstderr:\n${tail(this.#stderr)}`));
      }, timeoutMs);
      const onData = (): void => void check();
      const cleanup = (): void => {
        clearTimeout(timer);
        this.child.stdout?.off('data', onData);
        this.child.off('exit', onExit);
      };
      if (check()) return;
      this.child.stdout?.on('data', onData);
      this.child.once('exit', onExit);
    });
  }

  /** SIGKILLs the process and waits (bounded) until it is gone. */
  async kill(): Promise<void> {
    if (!this.running) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
  }
}

/** The last lines of a long output, for error messages. */
function tail(text: string, lines = 6): string {
  const all = text.trimEnd().split('\n');
  return (all.length > lines ? [`… (${all.length - lines} lines before)`, ...all.slice(-lines)] : all).join('\n');
}

/** Reads /proc/PID/cmdline as an argv array ([] if the process is gone). */
export function cmdlineOf(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((arg) => arg !== '');
  } catch {
    return [];
  }
}

export interface GatewayOptions {
  /** The host's network of its own zone (its sidecars' network); the control plane is reached there. */
  network: string;
  zone: string;
  name?: string;
  /** @default [`tls://0.0.0.0:7600`] */
  listen?: string[];
  /** @default tls:// on its WAN address, then on its zone network address */
  advertise?: string[];
  /** Where the control plane is reached. @default the cp host's address on `network` */
  controlPlane?: string;
  extra?: string[];
  logLevel?: string;
}

export interface SidecarOptions {
  network: string;
  zone: string;
  service: string;
  /** The local app's port on 127.0.0.1 (the app runs in the same host). */
  appPort?: number;
  upstreams?: string[];
  /** @default tls://<address on network>:7500 */
  listen?: string;
  extra?: string[];
  logLevel?: string;
  /** @default 30_000 */
  readyTimeoutMs?: number;
}

/** A gateway or sidecar in a host, ready. */
export interface MeshProcess {
  readonly proc: NsProcess;
  readonly host: string;
  /** The admin address inside the host, `127.0.0.1:PORT`. */
  readonly admin: string;
}

/**
 * The control plane in host `cp` and the means to start everything else: tokens and policies
 * through the CLI run in `cp`, gateways, sidecars, apps and clients in their hosts.
 */
export class Clouds {
  readonly topology: Topology;
  readonly dataDir: string;
  readonly cp: NsProcess;
  readonly #processes: NsProcess[] = [];

  private constructor(topology: Topology, dataDir: string, cp: NsProcess) {
    this.topology = topology;
    this.dataDir = dataDir;
    this.cp = cp;
    this.#processes.push(cp);
  }

  /** Starts the control plane in `cp`, listening on every network. */
  static async start(topology: Topology): Promise<Clouds> {
    const dataDir = await mkdtemp(join(tmpdir(), 'trellis-clouds-cp-'));
    const cp = new NsProcess(
      topology.spawn('cp', process.execPath, [trellisBin, 'control-plane', '--data-dir', dataDir, '--listen', `0.0.0.0:${CP_PORT}`], {
        cwd: repoRoot,
        env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn' },
      }),
      'cp',
      'control-plane',
    );
    try {
      await cp.waitForOutput(/admin token written to (\S+)/);
    } catch (error) {
      await cp.kill();
      await rm(dataDir, { recursive: true, force: true });
      throw error;
    }
    return new Clouds(topology, dataDir, cp);
  }

  /** The control plane's URL as seen from a host on `network`. */
  cpUrl(network: string): string {
    return `https://${this.topology.host('cp').address(network)}:${CP_PORT}`;
  }

  /** Runs `trellis ARGS...` in `host` (default `cp`) to completion. */
  async trellis(args: string[], host: HostRef = 'cp', timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const result = await this.topology.exec(host, process.execPath, [trellisBin, ...args], { timeoutMs, env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn' } });
    return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr };
  }

  /** `trellis ARGS... --control-plane <cp> --admin-token-file <file>` in `cp`; asserts success and returns stdout. */
  async admin(args: string[]): Promise<string> {
    const result = await this.trellis([...args, '--control-plane', `https://127.0.0.1:${CP_PORT}`, '--admin-token-file', join(this.dataDir, 'admin.token')]);
    assert.equal(result.code, 0, `trellis ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim();
  }

  serviceToken(service: string): Promise<string> {
    return this.admin(['token', 'create', '--service', service, '--ttl', '1h']);
  }

  gatewayToken(name: string, zone: string): Promise<string> {
    return this.admin(['token', 'create', '--gateway', name, '--zone', zone, '--ttl', '1h']);
  }

  /** Spawns `trellis ARGS...` in `host` as a long-running process. */
  spawnTrellis(host: string, args: string[], label: string, logLevel = 'warn'): NsProcess {
    const proc = new NsProcess(
      this.topology.spawn(host, process.execPath, [trellisBin, ...args], { cwd: repoRoot, env: { ...process.env, TRELLIS_LOG_LEVEL: logLevel } }),
      host,
      label,
    );
    this.#processes.push(proc);
    return proc;
  }

  async startGateway(host: string, options: GatewayOptions): Promise<MeshProcess> {
    const name = options.name ?? host;
    const token = await this.gatewayToken(name, options.zone);
    const h = this.topology.host(host);
    const advertise = options.advertise ?? [
      ...(h.networks.includes('wan') ? [`tls://${h.address('wan')}:${GATEWAY_PORT}`] : []),
      `tls://${h.address(options.network)}:${GATEWAY_PORT}`,
    ];
    const args = ['gateway', '--zone', options.zone, '--name', name, '--token', token, '--control-plane', options.controlPlane ?? this.cpUrl(options.network)];
    for (const url of options.listen ?? [`tls://0.0.0.0:${GATEWAY_PORT}`]) args.push('--listen', url);
    for (const url of advertise) args.push('--advertise', url);
    args.push('--admin', GATEWAY_ADMIN, ...(options.extra ?? []));
    const proc = this.spawnTrellis(host, args, `gateway ${options.zone}/${name}`, options.logLevel);
    await proc.waitForOutput(/ready: links on/);
    await proc.waitForOutput(/admin on http:\/\//);
    return { proc, host, admin: GATEWAY_ADMIN };
  }

  async startSidecar(host: string, options: SidecarOptions): Promise<MeshProcess> {
    const token = await this.serviceToken(options.service);
    const address = this.topology.host(host).address(options.network);
    const args = ['sidecar', '--service', options.service, '--token', token, '--control-plane', this.cpUrl(options.network), '--zone', options.zone];
    args.push('--listen', options.listen ?? `tls://${address}:${SIDECAR_PORT}`, '--admin', SIDECAR_ADMIN);
    if (options.appPort !== undefined) args.push('--app', `127.0.0.1:${options.appPort}`);
    for (const service of options.upstreams ?? []) args.push('--upstream', `${service}=127.0.0.1:${UPSTREAM_PORTS[service] ?? 0}`);
    args.push(...(options.extra ?? []));
    const proc = this.spawnTrellis(host, args, `sidecar ${options.service}`, options.logLevel);
    await proc.waitForOutput(/ready: links on/, options.readyTimeoutMs);
    await proc.waitForOutput(/admin on http:\/\//);
    return { proc, host, admin: SIDECAR_ADMIN };
  }

  /** The echo server of clouds-apps in `host` on 127.0.0.1:APP_PORT. */
  async startApp(host: string, port = APP_PORT): Promise<NsProcess> {
    const proc = new NsProcess(this.topology.spawn(host, process.execPath, [appsScript, 'server', String(port)]), host, 'echo app');
    this.#processes.push(proc);
    await proc.waitForOutput(/"listening"/, 10_000);
    return proc;
  }

  /** One echo connection from `host` to its sidecar's upstream port for `service`. */
  async echo(host: string, service: string, bytes: number, options: { timeoutMs?: number; marker?: string; holdMs?: number } = {}): Promise<ClientResult> {
    const timeoutMs = options.timeoutMs ?? 30_000;
    const port = UPSTREAM_PORTS[service];
    assert.ok(port !== undefined, `no upstream port for ${service}`);
    const result = await this.topology.exec(
      host,
      process.execPath,
      [appsScript, 'echo', String(port), String(bytes), String(timeoutMs), options.marker ?? '', String(options.holdMs ?? 0)],
      { timeoutMs: timeoutMs + (options.holdMs ?? 0) + 10_000 },
    );
    assert.equal(result.exitCode, 0, `echo client in ${host} failed: ${result.stderr}`);
    return JSON.parse(result.stdout.trim()) as ClientResult;
  }

  /** Starts one echo connection from `host` as a long-running process: it prints its result, then holds the connection open for `holdMs`. */
  spawnEcho(host: string, service: string, bytes: number, options: { timeoutMs?: number; marker?: string; holdMs?: number } = {}): NsProcess {
    const port = UPSTREAM_PORTS[service] ?? 0;
    const args = [appsScript, 'echo', String(port), String(bytes), String(options.timeoutMs ?? 30_000), options.marker ?? '', String(options.holdMs ?? 0)];
    const proc = new NsProcess(this.topology.spawn(host, process.execPath, args), host, 'echo client');
    this.#processes.push(proc);
    return proc;
  }

  /** Starts the load client in `host` (see clouds-apps.ts `load`). */
  startLoad(host: string, service: string, longStreams: number, durationMs: number, shortLoops: number): NsProcess {
    const port = UPSTREAM_PORTS[service] ?? 0;
    const proc = new NsProcess(this.topology.spawn(host, process.execPath, [appsScript, 'load', String(port), String(longStreams), String(durationMs), String(shortLoops)]), host, 'load client');
    this.#processes.push(proc);
    return proc;
  }

  /** The Prometheus text of a process's admin /metrics, fetched from inside its host. */
  async metricsText(target: MeshProcess): Promise<string> {
    const result = await this.topology.exec(target.host, 'curl', ['-sS', '--max-time', '5', `http://${target.admin}/metrics`], { timeoutMs: 10_000 });
    assert.equal(result.exitCode, 0, `curl /metrics in ${target.host} failed: ${result.stderr}`);
    return result.stdout;
  }

  /** The sum of the samples of `name` whose labels include `labels` (0 when none). */
  async metric(target: MeshProcess, name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(await this.metricsText(target), name, labels);
  }

  /** A process's admin /status as JSON, fetched from inside its host. */
  async status(target: MeshProcess): Promise<Record<string, unknown>> {
    const result = await this.topology.exec(target.host, 'curl', ['-sS', '--max-time', '5', `http://${target.admin}/status`], { timeoutMs: 10_000 });
    assert.equal(result.exitCode, 0, `curl /status in ${target.host} failed: ${result.stderr}`);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  }

  /** Kills every process started here and removes the control plane's data directory. */
  async stop(): Promise<void> {
    await Promise.all(this.#processes.map((proc) => proc.kill()));
    await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** The sum of the samples of `name` in a Prometheus text exposition whose labels include `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) sum += Number(line.split(' ').at(-1));
  }
  return sum;
}

/** Polls `probe` until it returns a value other than undefined, every `intervalMs`, for at most `timeoutMs`. */
export async function pollFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** Asserts a client connection was byte-exact both ways. */
export function assertExact(result: ClientResult, bytes: number, what: string): void {
  assert.equal(result.outcome, 'ok', `${what}: ${JSON.stringify(result)}`);
  // The 16-byte id goes first.
  assert.equal(result.sent, bytes + 16, `${what}: sent`);
  assert.equal(result.received, result.sent, `${what}: received`);
  assert.equal(result.receivedSha256, result.sentSha256, `${what}: sha256`);
}

export type { ClientResult, ServerRecord };

/**
 * The standard clouds: gateways ga1, ga2 (zone a), gb (zone b), gc (zone c; no inbound from the
 * WAN); sidecars client@a1, client@a2, echo-b@b1, echo-b@b2, echo-c@c1 (which also calls
 * echo-b), with echo apps in b1, b2 and c1.
 */
export interface StandardClouds {
  clouds: Clouds;
  gateways: Record<'ga1' | 'ga2' | 'gb' | 'gc', MeshProcess>;
  sidecars: Record<'a1' | 'a2' | 'b1' | 'b2' | 'c1', MeshProcess>;
  apps: Record<'b1' | 'b2' | 'c1', NsProcess>;
}

export async function startStandardClouds(topology: Topology, options: { gatewayLogLevel?: string; sidecarLogLevel?: string; withC?: boolean; withA2?: boolean } = {}): Promise<StandardClouds> {
  await topology.dropInbound('gc', 'wan');
  const clouds = await Clouds.start(topology);
  try {
    const withC = options.withC ?? true;
    const gl = options.gatewayLogLevel;
    const sl = options.sidecarLogLevel;
    const [ga1, ga2, gb, gc] = await Promise.all([
      clouds.startGateway('ga1', { network: 'cloudA', zone: 'a', logLevel: gl }),
      clouds.startGateway('ga2', { network: 'cloudA', zone: 'a', logLevel: gl }),
      clouds.startGateway('gb', { network: 'cloudB', zone: 'b', logLevel: gl }),
      // gc advertises its WAN address too, where its firewall drops every inbound connection: the
      // other gateways' dials there time out, and only the links gc dials out carry traffic.
      withC ? clouds.startGateway('gc', { network: 'netC', zone: 'c', logLevel: gl }) : undefined,
    ]);
    const apps = await Promise.all([clouds.startApp('b1'), clouds.startApp('b2'), withC ? clouds.startApp('c1') : undefined]);
    const upstreams = withC ? ['echo-b', 'echo-c'] : ['echo-b'];
    const [a1, a2, b1, b2, c1] = await Promise.all([
      clouds.startSidecar('a1', { network: 'cloudA', zone: 'a', service: 'client', upstreams, logLevel: sl }),
      options.withA2 === false ? undefined : clouds.startSidecar('a2', { network: 'cloudA', zone: 'a', service: 'client', upstreams, logLevel: sl }),
      clouds.startSidecar('b1', { network: 'cloudB', zone: 'b', service: 'echo-b', appPort: APP_PORT, logLevel: sl }),
      clouds.startSidecar('b2', { network: 'cloudB', zone: 'b', service: 'echo-b', appPort: APP_PORT, logLevel: sl }),
      withC ? clouds.startSidecar('c1', { network: 'netC', zone: 'c', service: 'echo-c', appPort: APP_PORT, upstreams: ['echo-b'], logLevel: sl }) : undefined,
    ]);
    return {
      clouds,
      gateways: { ga1, ga2, gb, gc: gc as MeshProcess },
      sidecars: { a1, a2: a2 as MeshProcess, b1, b2, c1: c1 as MeshProcess },
      apps: { b1: apps[0], b2: apps[1], c1: apps[2] as NsProcess },
    };
  } catch (error) {
    await clouds.stop();
    throw error;
  }
}

/** Polls small echoes from `host` to `service` until one is byte-exact (routes and links take a moment to form). */
export async function untilReachable(clouds: Clouds, host: string, service: string, timeoutMs = 30_000): Promise<void> {
  let last: ClientResult | undefined;
  await pollFor(
    async () => {
      last = await clouds.echo(host, service, 4096, { timeoutMs: 5_000 });
      return last.outcome === 'ok' ? true : undefined;
    },
    `${host} to reach ${service} (last attempt: ${JSON.stringify(last)})`,
    timeoutMs,
    200,
  ).catch((error: Error) => {
    throw new Error(`${error.message}; last: ${JSON.stringify(last)}`);
  });
}
