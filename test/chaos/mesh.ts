// The mesh the chaos and soak runs break: real trellis processes (control plane, gateways,
// sidecars) and traffic apps in network-namespace hosts, each process restartable with the
// arguments it first had. The control plane's data directory is a small tmpfs of its own, so a
// scenario can fill it or make it read-only. With `replicas`, two control planes share an etcd
// in their host; with `fakeClock`, the control plane's wall clock is libfaketime's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NsProcess, pollFor } from '../support/clouds.js';
import { etcdBinary, etcdMemberArgs } from '../support/etcd.js';
import type { Topology, TopologySpec } from '../support/netns.js';
import { createTopology } from '../support/netns.js';
import { repoRoot, trellisBin } from '../support/processes.js';
import type { ServerRecord, TrafficPlan } from './traffic.js';

const trafficScript = fileURLToPath(new URL('./traffic.js', import.meta.url));

const CP_PORT = 7400;
/** The second control-plane replica's port, in the same host as the first. */
const CP2_PORT = 7401;
/** etcd's client and peer URLs, on the loopback of the control planes' host. */
const ETCD_URL = 'http://127.0.0.1:2379';
const ETCD_PEER_URL = 'http://127.0.0.1:2380';
/** Debian's libfaketime (package `faketime`). */
export const LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1';
const LINK_PORT = 7500;
const GATEWAY_PORT = 7600;
const ADMIN = '127.0.0.1:9500';
const APP_PORT = 8000;
/** The client sidecar's upstream ports: echo-a in its own zone, echo-b across zones through gateways. */
export const UPSTREAM_PORTS = { 'echo-a': 7001, 'echo-b': 7002 } as const;
export type EchoService = keyof typeof UPSTREAM_PORTS;
/** The control plane's data directory: large enough for its state, small enough to fill in a moment. */
const CP_TMPFS_BYTES = 8 * 1024 * 1024;
const READY_TIMEOUT_MS = 60_000;

/**
 * Zone a (`lanA`): the client sidecar in a1, the server sidecar of echo-a in a2, gateways ga1 and
 * ga2. Zone b (`lanB`): gateway gb, the server sidecar of echo-b in b1. A WAN between the
 * gateways; the control plane's host on every network.
 */
export const CHAOS_SPEC: TopologySpec = {
  networks: { lanA: '10.73.1.0/24', lanB: '10.73.2.0/24', wan: '10.73.100.0/24' },
  hosts: {
    cp: { lanA: '10.73.1.100', lanB: '10.73.2.100', wan: '10.73.100.100' },
    a1: { lanA: '10.73.1.11' },
    a2: { lanA: '10.73.1.12' },
    ga1: { lanA: '10.73.1.2', wan: '10.73.100.2' },
    ga2: { lanA: '10.73.1.3', wan: '10.73.100.3' },
    gb: { lanB: '10.73.2.2', wan: '10.73.100.4' },
    b1: { lanB: '10.73.2.11' },
  },
};

/** Only zone a's sidecars: what the short runs need. */
export const DIRECT_SPEC: TopologySpec = {
  networks: { lanA: '10.73.1.0/24' },
  hosts: { cp: { lanA: '10.73.1.100' }, a1: { lanA: '10.73.1.11' }, a2: { lanA: '10.73.1.12' } },
};

/** Every restartable process of the mesh, by role. */
export type Role = 'cp' | 'cp2' | 'etcd' | 'client' | 'server-a' | 'server-a2' | 'ga1' | 'ga2' | 'gb' | 'server-b';
/** The control-plane replicas: `cp2` only with `replicas`. */
export type Replica = 'cp' | 'cp2';

export interface ChaosMeshOptions {
  /** Zone b behind gateways (CHAOS_SPEC) besides zone a's direct path (DIRECT_SPEC). */
  readonly gateways: boolean;
  /** The control plane's `--cert-ttl`. @default 24h */
  readonly certTtl?: string;
  /** TRELLIS_LOG_LEVEL of the trellis processes. @default the runner's own TRELLIS_LOG_LEVEL, else `warn` */
  readonly logLevel?: string;
  /** A directory to write every process's stdout and stderr into when the mesh stops (one file per process, numbered by start). */
  readonly logDir?: string;
  /**
   * Two control-plane replicas (`cp` on its tmpfs, `cp2`) on one etcd (`etcd`), all in host cp;
   * sidecars and gateways are given both replicas' URLs.
   */
  readonly replicas?: boolean;
  /** The control plane `cp` runs under libfaketime: {@link ChaosMesh.setCpClock} moves its wall clock (not its monotonic one). */
  readonly fakeClock?: boolean;
  /** A second server sidecar of echo-a (`server-a2`, with its own app, in host a3 on lanA). */
  readonly secondServer?: boolean;
}

/** The host of {@link ChaosMeshOptions.secondServer}. */
const SECOND_SERVER_HOST = { a3: { lanA: '10.73.1.13' } };

interface RoleSpec {
  readonly host: string;
  /** The program, when it is not trellis. */
  readonly command?: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly label: string;
  /** The stdout line that says it is up. */
  readonly ready: RegExp;
}

/** How long a read-only remount waits for the control plane to close the files it writes. */
const REMOUNT_BUSY_TIMEOUT_MS = 10_000;

/** A tmpfs mounted on a fresh directory; unmounted and removed by {@link TmpfsDir.remove}, also at exit. */
class TmpfsDir {
  readonly path: string;
  #mounted = false;
  readonly #onExit = (): void => this.remove();

  constructor(bytes: number) {
    this.path = mkdtempSync(join(tmpdir(), 'trellis-chaos-cp-'));
    const result = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'trellis-chaos', this.path], { encoding: 'utf8' });
    if (result.status !== 0) {
      rmSync(this.path, { recursive: true, force: true });
      throw new Error(`chaos: cannot mount a tmpfs for the control plane's data (needs root): ${result.stderr}`);
    }
    this.#mounted = true;
    process.on('exit', this.#onExit);
  }

  /**
   * `ro` or `rw`: the whole file system, seen from every namespace. Linux refuses `ro` while a
   * file is open for writing ("busy"), as the file store's journal is for a second after each
   * append: tried again until it is idle, for up to {@link REMOUNT_BUSY_TIMEOUT_MS}.
   */
  async remount(mode: 'ro' | 'rw'): Promise<void> {
    const deadline = Date.now() + REMOUNT_BUSY_TIMEOUT_MS;
    for (;;) {
      const result = spawnSync('mount', ['-o', `remount,${mode}`, this.path], { encoding: 'utf8' });
      if (result.status === 0) return;
      if (!/busy/.test(result.stderr) || Date.now() > deadline) throw new Error(`chaos: remount ${mode} of ${this.path} failed: ${result.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  remove(): void {
    process.off('exit', this.#onExit);
    if (this.#mounted) {
      // Lazy, so a process still holding a file there cannot keep the mount alive.
      spawnSync('umount', ['-l', this.path]);
      this.#mounted = false;
    }
    rmSync(this.path, { recursive: true, force: true });
  }
}

/** A running mesh; {@link ChaosMesh.stop} removes every process, namespace, mount and directory it made. */
export class ChaosMesh {
  readonly topology: Topology;
  readonly options: ChaosMeshOptions;
  readonly cpData: TmpfsDir;
  readonly #dirs: string[] = [];
  readonly #roles = new Map<Role, RoleSpec>();
  readonly #running = new Map<Role, NsProcess>();
  readonly #apps = new Map<string, NsProcess>();
  readonly #others: NsProcess[] = [];
  /** Every process started, in order, with a name for its log file. */
  readonly #started: { readonly name: string; readonly proc: NsProcess }[] = [];
  /** libfaketime's timestamp file for the control plane, with `fakeClock`. */
  #clockFile: string | undefined;
  // The sidecars' and gateways' data directories go at exit too, if the run never got to stop().
  readonly #onExit = (): void => {
    for (const dir of this.#dirs) rmSync(dir, { recursive: true, force: true });
  };

  private constructor(topology: Topology, options: ChaosMeshOptions, cpData: TmpfsDir) {
    this.topology = topology;
    this.options = options;
    this.cpData = cpData;
    process.on('exit', this.#onExit);
  }

  /** Builds the topology and starts every process; on failure removes what it made and rethrows. */
  static async start(options: ChaosMeshOptions): Promise<ChaosMesh> {
    const spec = options.gateways ? CHAOS_SPEC : DIRECT_SPEC;
    const topology = await createTopology(options.secondServer === true ? { ...spec, hosts: { ...spec.hosts, ...SECOND_SERVER_HOST } } : spec);
    let mesh: ChaosMesh | undefined;
    try {
      mesh = new ChaosMesh(topology, options, new TmpfsDir(CP_TMPFS_BYTES));
      await mesh.#startAll();
      return mesh;
    } catch (error) {
      if (mesh !== undefined) await mesh.stop();
      else await topology.destroy();
      throw error;
    }
  }

  /** The roles this mesh runs. */
  roles(): Role[] {
    return [...this.#roles.keys()];
  }

  process(role: Role): NsProcess {
    const proc = this.#running.get(role);
    if (proc === undefined) throw new Error(`chaos: no ${role} running`);
    return proc;
  }

  /** The host a role runs in. */
  hostOf(role: Role): string {
    const spec = this.#roles.get(role);
    if (spec === undefined) throw new Error(`chaos: no role ${role} in this mesh`);
    return spec.host;
  }

  cpUrl(network = 'lanA', replica: Replica = 'cp'): string {
    return `https://${this.topology.host('cp').address(network)}:${replica === 'cp' ? CP_PORT : CP2_PORT}`;
  }

  /** Every replica's URL on `network`, first `cp`. */
  cpUrls(network = 'lanA'): string[] {
    return this.options.replicas === true ? [this.cpUrl(network, 'cp'), this.cpUrl(network, 'cp2')] : [this.cpUrl(network)];
  }

  /** A sidecar's or gateway's data directory (its identity.json holds the certificate it uses). */
  dataDirOf(role: Role): string {
    const spec = this.#roles.get(role);
    const index = spec?.args.indexOf('--data-dir') ?? -1;
    const dir = index < 0 ? undefined : spec?.args[index + 1];
    if (dir === undefined) throw new Error(`chaos: ${role} has no data directory`);
    return dir;
  }

  /**
   * Sets the offset of the control plane's wall clock from the real one, in libfaketime's
   * relative form (`+2h`, `-1h`, `+0`); it takes effect at the control plane's next clock read.
   */
  setCpClock(offset: string): void {
    if (this.#clockFile === undefined) throw new Error('chaos: this mesh has no fake clock');
    if (!/^[+-]\d+[smhdy]?$/.test(offset)) throw new Error(`chaos: not a libfaketime offset: ${offset}`);
    writeFileSync(this.#clockFile, `${offset}\n`);
  }

  async #startAll(): Promise<void> {
    const level = this.#logLevel();
    const cpArgs = (dataDir: string, port: number): string[] => {
      const args = ['control-plane', '--data-dir', dataDir, '--listen', `0.0.0.0:${port}`, '--lease-ttl', '5s'];
      if (this.options.certTtl !== undefined) args.push('--cert-ttl', this.options.certTtl);
      return args;
    };
    const storeArgs: string[] = [];
    if (this.options.replicas === true) {
      const keyFile = join(this.#tempDir('etcd-key'), 'etcd.key');
      writeFileSync(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
      storeArgs.push('--store', 'etcd', '--etcd', ETCD_URL, '--etcd-encryption-key-file', keyFile);
      const etcdData = join(this.#tempDir('etcd'), 'data');
      this.#roles.set('etcd', { host: 'cp', command: etcdBinary(), args: etcdMemberArgs(etcdData, ETCD_URL, ETCD_PEER_URL), label: 'etcd', ready: /serving client traffic/ });
      await this.#spawn('etcd', level);
    }
    let cpEnv: Record<string, string> | undefined;
    if (this.options.fakeClock === true) {
      if (!existsSync(LIBFAKETIME)) throw new Error(`chaos: libfaketime is not installed at ${LIBFAKETIME}: install the Debian package faketime (scripts/test.sh does)`);
      this.#clockFile = join(this.#tempDir('clock'), 'faketime');
      this.setCpClock('+0');
      // The timestamp file read at every clock read; the monotonic clock (timers) left alone, as a real wall-clock jump would.
      cpEnv = { LD_PRELOAD: LIBFAKETIME, FAKETIME_TIMESTAMP_FILE: this.#clockFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
    }
    this.#roles.set('cp', { host: 'cp', args: [...cpArgs(this.cpData.path, CP_PORT), ...storeArgs], env: cpEnv, label: 'control plane', ready: /admin token written to/ });
    await this.#spawn('cp', level);
    if (this.options.replicas === true) {
      // After the first: it takes the CA and the admin token the first stored in etcd.
      this.#roles.set('cp2', { host: 'cp', args: [...cpArgs(this.#tempDir('cp2'), CP2_PORT), ...storeArgs], label: 'control plane replica 2', ready: /admin token written to/ });
      await this.#spawn('cp2', level);
    }
    await Promise.all([this.#startApp('a2'), this.options.gateways ? this.#startApp('b1') : undefined, this.options.secondServer === true ? this.#startApp('a3') : undefined]);
    if (this.options.gateways) {
      await Promise.all([this.#defineGateway('ga1', 'a', 'lanA'), this.#defineGateway('ga2', 'a', 'lanA'), this.#defineGateway('gb', 'b', 'lanB')]);
      await Promise.all((['ga1', 'ga2', 'gb'] as const).map((role) => this.#spawn(role, level)));
    }
    await this.#defineSidecar('server-a', 'a2', 'echo-a', 'a', 'lanA', []);
    if (this.options.secondServer === true) await this.#defineSidecar('server-a2', 'a3', 'echo-a', 'a', 'lanA', []);
    if (this.options.gateways) await this.#defineSidecar('server-b', 'b1', 'echo-b', 'b', 'lanB', []);
    const upstreams = this.options.gateways ? (['echo-a', 'echo-b'] as const) : (['echo-a'] as const);
    await this.#defineSidecar('client', 'a1', 'client', 'a', 'lanA', upstreams.map((service) => `${service}=127.0.0.1:${UPSTREAM_PORTS[service]}`));
    await Promise.all([...this.#roles.keys()].filter((role) => role !== 'cp' && !this.#running.has(role)).map((role) => this.#spawn(role, level)));
    for (const service of upstreams) await this.untilReachable(service);
  }

  async #defineGateway(role: 'ga1' | 'ga2' | 'gb', zone: string, network: string): Promise<void> {
    const host = this.topology.host(role);
    const token = await this.admin(['token', 'create', '--gateway', role, '--zone', zone, '--ttl', '1h']);
    const dataDir = this.#tempDir(`gw-${role}`);
    const args = ['gateway', '--zone', zone, '--name', role, '--token', token, ...this.cpUrls(network).flatMap((url) => ['--control-plane', url]), '--listen', `tls://0.0.0.0:${GATEWAY_PORT}`];
    args.push('--advertise', `tls://${host.address('wan')}:${GATEWAY_PORT}`, '--advertise', `tls://${host.address(network)}:${GATEWAY_PORT}`);
    args.push('--admin', ADMIN, '--data-dir', dataDir);
    this.#roles.set(role, { host: role, args, label: `gateway ${role}`, ready: /admin on http:\/\// });
  }

  async #defineSidecar(role: Role, host: string, service: string, zone: string, network: string, upstreams: readonly string[]): Promise<void> {
    const token = await this.admin(['token', 'create', '--service', service, '--ttl', '1h']);
    const dataDir = this.#tempDir(`sc-${role}`);
    const address = this.topology.host(host).address(network);
    const args = ['sidecar', '--service', service, '--token', token, ...this.cpUrls(network).flatMap((url) => ['--control-plane', url]), '--zone', zone];
    args.push('--listen', `tls://${address}:${LINK_PORT}`, '--admin', ADMIN, '--data-dir', dataDir, '--drain-delay', '1ms');
    if (upstreams.length === 0) args.push('--app', `127.0.0.1:${APP_PORT}`);
    for (const upstream of upstreams) args.push('--upstream', upstream);
    this.#roles.set(role, { host, args, label: `sidecar ${service}`, ready: /admin on http:\/\// });
  }

  #tempDir(name: string): string {
    const dir = mkdtempSync(join(tmpdir(), `trellis-chaos-${name}-`));
    this.#dirs.push(dir);
    return dir;
  }

  #logLevel(): string {
    return this.options.logLevel ?? process.env.TRELLIS_LOG_LEVEL ?? 'warn';
  }

  async #spawn(role: Role, logLevel = this.#logLevel()): Promise<NsProcess> {
    const spec = this.#roles.get(role);
    if (spec === undefined) throw new Error(`chaos: no role ${role}`);
    const [command, args] = spec.command === undefined ? [process.execPath, [trellisBin, ...spec.args]] : [spec.command, spec.args];
    const proc = new NsProcess(
      this.topology.spawn(spec.host, command, args, { cwd: repoRoot, env: { ...process.env, TRELLIS_LOG_LEVEL: logLevel, ...spec.env } }),
      spec.host,
      spec.label,
    );
    this.#running.set(role, proc);
    this.#started.push({ name: role, proc });
    await proc.waitForOutput(spec.ready, READY_TIMEOUT_MS);
    return proc;
  }

  async #startApp(host: string): Promise<void> {
    const proc = new NsProcess(this.topology.spawn(host, process.execPath, [trafficScript, 'server', JSON.stringify({ port: APP_PORT })]), host, 'traffic app');
    this.#apps.set(host, proc);
    this.#started.push({ name: `app-${host}`, proc });
    await proc.waitForOutput(/"listening"/, 10_000);
  }

  /** SIGKILLs a role's process and waits until it is gone. */
  async kill(role: Role): Promise<void> {
    await this.process(role).kill();
  }

  /** Starts a killed role again with its first arguments (a sidecar or gateway rejoins from its data directory); resolves once it is up. */
  async restart(role: Role): Promise<NsProcess> {
    const old = this.#running.get(role);
    if (old?.running === true) await old.kill();
    if (old !== undefined) this.#others.push(old);
    return this.#spawn(role);
  }

  /** Starts a traffic client in a1 towards `service`; it prints one JSON line per stream and `done`. */
  startTraffic(service: EchoService, plan: Omit<TrafficPlan, 'port'>): NsProcess {
    const proc = new NsProcess(this.topology.spawn('a1', process.execPath, [trafficScript, 'client', JSON.stringify({ ...plan, port: UPSTREAM_PORTS[service] })]), 'a1', `traffic to ${service}`);
    this.#others.push(proc);
    this.#started.push({ name: `traffic-${service}`, proc });
    return proc;
  }

  /** Every server record printed so far by the apps of echo-a and echo-b. */
  serverRecords(): ServerRecord[] {
    return [...this.#apps.values()].flatMap((app) => app.lines<ServerRecord & { event: string }>()).filter((line) => line.event === 'open' || line.event === 'close');
  }

  /** Runs `trellis ARGS...` in host cp against the control plane with the admin token; asserts success and returns stdout. */
  async admin(args: string[]): Promise<string> {
    const result = await this.trellisInCp(args);
    assert.equal(result.exitCode, 0, `trellis ${args.join(' ')} failed: ${result.stderr}`);
    return result.stdout.trim();
  }

  /** Like {@link admin}, but resolves with whatever the command did; with replicas, against `replica` (both accept one admin token). */
  async trellisInCp(args: string[], replica: Replica = 'cp'): Promise<{ exitCode: number | null; stdout: string; stderr: string }> {
    const port = replica === 'cp' ? CP_PORT : CP2_PORT;
    const full = [trellisBin, ...args, '--control-plane', `https://127.0.0.1:${port}`, '--admin-token-file', join(this.cpData.path, 'admin.token')];
    return this.topology.exec('cp', process.execPath, full, { timeoutMs: 30_000, env: { ...process.env, TRELLIS_LOG_LEVEL: 'warn' } });
  }

  /** A sidecar's or gateway's admin page (`/metrics` or `/status`), fetched inside its host; undefined if it does not answer. */
  async adminPage(role: Role, page: '/metrics' | '/status'): Promise<string | undefined> {
    const result = await this.topology.exec(this.hostOf(role), 'curl', ['-sS', '--max-time', '5', `http://${ADMIN}${page}`], { timeoutMs: 10_000 });
    return result.exitCode === 0 ? result.stdout : undefined;
  }

  /** Polls one small exact echo from a1 to `service` until it succeeds. */
  async untilReachable(service: EchoService, timeoutMs = 60_000): Promise<void> {
    await pollFor(
      async () => {
        const probe = this.startTraffic(service, { durationMs: 1, short: 1, maxStreams: 1 });
        await probe.exited();
        return probe.stdout().includes('"outcome":"ok"') ? true : undefined;
      },
      `a1 to reach ${service}`,
      timeoutMs,
      200,
    );
  }

  /** One file per process started, `NNN-name.log`: its stdout, then its stderr. */
  #writeLogs(dir: string): void {
    mkdirSync(dir, { recursive: true });
    this.#started.forEach(({ name, proc }, index) => {
      writeFileSync(join(dir, `${String(index).padStart(3, '0')}-${name}.log`), `${proc.stdout()}\n--- stderr ---\n${proc.stderr()}`);
    });
  }

  /** Kills every process, deletes the namespaces, unmounts the control plane's tmpfs, removes the directories. */
  async stop(): Promise<void> {
    await Promise.all([...this.#running.values(), ...this.#apps.values(), ...this.#others].map((proc) => proc.kill()));
    if (this.options.logDir !== undefined) this.#writeLogs(this.options.logDir);
    await this.topology.destroy().catch((error: unknown) => process.stderr.write(`${String(error)}\n`));
    this.cpData.remove();
    process.off('exit', this.#onExit);
    this.#onExit();
  }
}

/** Resident set size and open file descriptors of a process, from /proc (undefined once it is gone). */
export function procStats(pid: number): { rssBytes: number; fds: number; cpuSeconds: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
    const fds = readdirSync(`/proc/${pid}/fd`).length;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks (100 a second on Linux).
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / 100;
    return { rssBytes: rssKb * 1024, fds, cpuSeconds };
  } catch {
    return undefined;
  }
}
