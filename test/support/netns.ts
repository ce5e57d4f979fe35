// Network namespaces as hosts and clouds for multi-host tests (DESIGN.md "Testing").
//
// Each network is a Linux bridge alone in its own "switch" namespace; each host is a namespace
// with one veth per network it is on, the peer end enslaved to that network's bridge. Nothing is
// created in the root namespace: both ends of every veth are born inside namespaces the harness
// owns, so deleting those namespaces removes every interface and the host's own interfaces and
// routes are never touched. There is deliberately no routing between networks: a host has only
// the connected /24 routes of the networks it is on, so clouds reach each other only through a
// process (a gateway) that is on both.
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Where each topology records which process owns it, so later runs can tell leftovers from live topologies. */
const MARKER_DIR = '/run/trellis-netns';
/** The prefix of every namespace the harness makes: `tr<6 hex>-…`. */
export const NETNS_PREFIX = 'tr';
/** Matches a harness namespace name and captures its topology id (`tr` + 6 hex). */
const NAMESPACE_PATTERN = /^(tr[0-9a-f]{6})-/;
const MARKER_PATTERN = /^(tr[0-9a-f]{6})\.json$/;
/** Host and network names: they become parts of namespace and interface names (≤ 15 chars). */
const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9]{0,11}$/;
/** The bridge inside each switch namespace; it is alone there, so a fixed name cannot collide. */
const BRIDGE = 'br0';
const COMMAND_TIMEOUT_MS = 10_000;
const CHILD_EXIT_TIMEOUT_MS = 5_000;

/** What to build: networks by name with a /24 subnet, and hosts by name with their address on each network they are on. */
export interface TopologySpec {
  /** Network name → subnet, e.g. `{ cloudA: '10.71.1.0/24' }`. Only /24 subnets. */
  readonly networks: Readonly<Record<string, string>>;
  /** Host name → (network name → the host's address there), e.g. `{ ga1: { cloudA: '10.71.1.2', wan: '10.71.100.2' } }`. */
  readonly hosts: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** One host of a topology. */
export interface NetnsHost {
  readonly name: string;
  /** The namespace name, for `ip netns exec`. */
  readonly netns: string;
  /** The networks this host is on. */
  readonly networks: readonly string[];
  /** The host's address on `network`; throws if the host is not on it. */
  address(network: string): string;
  /** The host's interface on `network` (named after the network). */
  interfaceName(network: string): string;
}

/** A host, by name or as returned by {@link Topology.host}. */
export type HostRef = string | NetnsHost;

/** What a command run with {@link Topology.exec} did. */
export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** The exit code, or null if a signal ended it. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link Topology.exec}. */
export interface ExecOptions {
  /** The command is SIGKILLed and exec rejects after this long; default 30 s. */
  readonly timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Options of {@link Topology.dropInbound}. */
export interface DropInboundOptions {
  /** Answer new connections with a TCP reset (fast ECONNREFUSED) instead of silently dropping them (the dialer times out). */
  readonly reject?: boolean;
}

/** Throws a clear error unless `name` is an executable on PATH or in an sbin directory. */
function findTool(name: string, debianPackage: string): string {
  const dirs = [...(process.env['PATH'] ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs.filter((d) => d !== '')) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here; try the next directory.
    }
  }
  throw new Error(`netns harness: \`${name}\` not found on PATH or in /usr/sbin; install the Debian package ${debianPackage} (scripts/test.sh does)`);
}

/** The absolute paths of the tools the harness drives; throws if one is missing or we are not root. */
function requireTools(): { ip: string; iptables: string } {
  const tools = { ip: findTool('ip', 'iproute2'), iptables: findTool('iptables', 'iptables') };
  if (process.getuid?.() !== 0) throw new Error('netns harness: creating network namespaces needs root');
  return tools;
}

/** Runs a command to completion; rejects with its stderr if it fails or overruns. */
function run(command: string, args: readonly string[], timeoutMs = COMMAND_TIMEOUT_MS): Promise<string> {
  return collect(command, args, { timeoutMs }).then((result) => {
    if (result.exitCode === 0) return result.stdout;
    throw new Error(`${command} ${args.join(' ')} failed (${result.exitCode ?? result.signal}): ${result.stderr.trim()}`);
  });
}

/** Spawns a command and resolves with what it printed and how it ended; rejects on timeout. */
function collect(command: string, args: readonly string[], options: ExecOptions): Promise<ExecResult> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    // No stdin unless there is input: a command that exits before reading it would make our write fail with EPIPE.
    const child = spawn(command, args, { env: options.env ?? process.env, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms; stdout: ${stdout} stderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (exitCode: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, exitCode, signal });
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => undefined);
      child.stdin.end(options.input);
    }
  });
}

/** Every namespace `ip netns list` shows (its lines read `name` or `name (id: N)`). */
function listNamespacesSync(ip: string): string[] {
  const result = spawnSync(ip, ['netns', 'list'], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  if (result.status !== 0) throw new Error(`ip netns list failed: ${result.stderr}`);
  return result.stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** Harness namespaces currently present, optionally only those of one topology id. */
export function listHarnessNamespaces(topologyId?: string): string[] {
  const { ip } = requireTools();
  return listNamespacesSync(ip).filter((name) => {
    const id = NAMESPACE_PATTERN.exec(name)?.[1];
    return id !== undefined && (topologyId === undefined || id === topologyId);
  });
}

/** The kernel start time of `pid` in clock ticks (field 22 of /proc/PID/stat), or undefined if there is no such process. */
function processStartTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces; count fields after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface OwnerMarker {
  readonly pid: number;
  readonly startTicks: string;
}

function markerPath(topologyId: string): string {
  return path.join(MARKER_DIR, `${topologyId}.json`);
}

/** Records this process as the owner of `topologyId`, before any of its namespaces exist. */
function writeMarker(topologyId: string): void {
  mkdirSync(MARKER_DIR, { recursive: true });
  const marker: OwnerMarker = { pid: process.pid, startTicks: processStartTicks(process.pid) ?? '' };
  writeFileSync(markerPath(topologyId), JSON.stringify(marker));
}

/**
 * Whether the process that made `topologyId` still runs. The start time guards against a reused
 * pid; a missing or unreadable marker means the owner is gone, because owners write it first.
 */
function ownerAlive(topologyId: string): boolean {
  try {
    const marker = JSON.parse(readFileSync(markerPath(topologyId), 'utf8')) as OwnerMarker;
    return processStartTicks(marker.pid) === marker.startTicks;
  } catch {
    return false;
  }
}

/** SIGKILLs every process inside `netns` (including grandchildren the harness never saw), synchronously. */
function killNamespaceProcessesSync(ip: string, netns: string): void {
  const result = spawnSync(ip, ['netns', 'pids', netns], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  for (const pid of (result.stdout ?? '').split('\n').filter((line) => line !== '')) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Kills what runs in `netns` and deletes it, synchronously; returns the error text if deleting failed. */
function deleteNamespaceSync(ip: string, netns: string): string | undefined {
  killNamespaceProcessesSync(ip, netns);
  const result = spawnSync(ip, ['netns', 'del', netns], { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS });
  return result.status === 0 || /No such file/.test(result.stderr) ? undefined : `${netns}: ${result.stderr.trim()}`;
}

/**
 * Deletes harness namespaces (names `prefix<6 hex>-…`) whose creating process no longer runs —
 * what a killed or crashed run left — along with their owner markers. Namespaces of live
 * topologies, in this or any other process, are kept. Returns the names it deleted.
 */
export function removeLeftoverNamespaces(prefix: string = NETNS_PREFIX): string[] {
  const { ip } = requireTools();
  const removed: string[] = [];
  const stale = new Set<string>();
  for (const name of listNamespacesSync(ip)) {
    const id = NAMESPACE_PATTERN.exec(name)?.[1];
    if (id === undefined || !id.startsWith(prefix) || ownerAlive(id)) continue;
    stale.add(id);
    if (deleteNamespaceSync(ip, name) === undefined) removed.push(name);
  }
  // Markers of dead owners whose namespaces are already gone (or never got made) go too.
  for (const file of safeReaddir(MARKER_DIR)) {
    const id = MARKER_PATTERN.exec(file)?.[1];
    if (id !== undefined && id.startsWith(prefix) && (stale.has(id) || !ownerAlive(id))) rmSync(path.join(MARKER_DIR, file), { force: true });
  }
  return removed;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function ipv4ToNumber(address: string): number {
  const parts = address.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`netns harness: bad IPv4 address ${address}`);
  return parts.reduce((value, part) => value * 256 + part, 0);
}

/** The subnet's base as a number; throws unless it is an IPv4 /24 written with its network address. */
function parseSubnet24(network: string, subnet: string): number {
  const [base = '', bits] = subnet.split('/');
  const value = ipv4ToNumber(base);
  if (bits !== '24' || value % 256 !== 0) throw new Error(`netns harness: network ${network} needs a /24 subnet like 10.71.1.0/24, got ${subnet}`);
  return value;
}

function checkName(kind: string, name: string): void {
  if (!NAME_PATTERN.test(name)) throw new Error(`netns harness: ${kind} name ${JSON.stringify(name)} must match ${NAME_PATTERN} (it becomes part of interface names)`);
}

/** Throws on names that would not fit interface names, addresses outside their subnet, duplicates and unknown networks. */
function validateSpec(spec: TopologySpec): void {
  const bases = new Map<string, number>();
  for (const [network, subnet] of Object.entries(spec.networks)) {
    checkName('network', network);
    bases.set(network, parseSubnet24(network, subnet));
  }
  const used = new Set<string>();
  for (const [host, attachments] of Object.entries(spec.hosts)) {
    checkName('host', host);
    if (Object.keys(attachments).length === 0) throw new Error(`netns harness: host ${host} is on no network`);
    for (const [network, address] of Object.entries(attachments)) {
      const base = bases.get(network);
      if (base === undefined) throw new Error(`netns harness: host ${host} is on unknown network ${network}`);
      const offset = ipv4ToNumber(address) - base;
      if (offset < 1 || offset > 254) throw new Error(`netns harness: ${host}'s address ${address} is not a host address of ${network} ${spec.networks[network]}`);
      if (used.has(address)) throw new Error(`netns harness: address ${address} is used twice`);
      used.add(address);
    }
  }
}

/**
 * A built topology. Every namespace, interface, firewall rule and child it made goes away with
 * {@link Topology.destroy}, or at process exit if the test never got there.
 */
export class Topology {
  /** `tr<6 hex>`: the prefix of every namespace of this topology. */
  readonly id: string;
  readonly #spec: TopologySpec;
  readonly #tools: { ip: string; iptables: string };
  readonly #hosts = new Map<string, NetnsHost>();
  /** Namespaces created so far, in creation order, so a half-built topology can be torn down. */
  readonly #namespaces: string[] = [];
  readonly #children = new Set<ChildProcess>();
  /** iptables rules in place, by namespace and rule text, so repeating a call adds nothing and undoing removes exactly one. */
  readonly #rules = new Set<string>();
  #destroyed: Promise<void> | undefined;
  // A bound listener so destroy() can unregister exactly this topology's cleanup.
  readonly #onExit = (): void => {
    try {
      this.#destroySync();
    } catch (error) {
      // Nothing can catch an error thrown during exit; say what is left behind instead.
      process.stderr.write(`${String(error)}\n`);
    }
  };

  private constructor(spec: TopologySpec, tools: { ip: string; iptables: string }) {
    this.id = `${NETNS_PREFIX}${randomBytes(3).toString('hex')}`;
    this.#spec = spec;
    this.#tools = tools;
  }

  /** Builds `spec`; on any failure removes what it made and rethrows. Use {@link createTopology}. */
  static async create(spec: TopologySpec): Promise<Topology> {
    validateSpec(spec);
    const tools = requireTools();
    removeLeftoverNamespaces(NETNS_PREFIX);
    const topology = new Topology(spec, tools);
    writeMarker(topology.id);
    process.on('exit', topology.#onExit);
    try {
      await topology.#build();
    } catch (error) {
      await topology.destroy().catch(() => undefined);
      throw error;
    }
    return topology;
  }

  /** The host called `name`; throws if the spec has none. */
  host(name: string): NetnsHost {
    const host = this.#hosts.get(name);
    if (host === undefined) throw new Error(`netns harness: no host ${name} in topology ${this.id}`);
    return host;
  }

  /** Every namespace of this topology (switches and hosts) still alive. */
  namespaces(): readonly string[] {
    return [...this.#namespaces];
  }

  /** Runs `command args…` inside the host's namespace to completion; rejects only if it cannot start or overruns `timeoutMs`. */
  exec(host: HostRef, command: string, args: readonly string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    return collect(this.#tools.ip, ['netns', 'exec', this.#resolve(host).netns, command, ...args], options);
  }

  /**
   * Starts a long-running `command args…` inside the host's namespace. `ip netns exec` execs the
   * command, so the returned child is the command itself; destroy() SIGKILLs it.
   */
  spawn(host: HostRef, command: string, args: readonly string[] = [], options: SpawnOptions = {}): ChildProcess {
    const child = spawn(this.#tools.ip, ['netns', 'exec', this.#resolve(host).netns, command, ...args], { stdio: 'pipe', ...options });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    // A failed spawn must not crash the test process; the caller sees it through 'exit'/'error' too.
    child.on('error', () => undefined);
    return child;
  }

  /**
   * Makes the host refuse new inbound TCP connections — from all its networks, or only from
   * `network`. Loopback stays open (a host still reaches its own local apps) and so do replies
   * to connections the host dials out: those packets are ESTABLISHED, not NEW.
   */
  async dropInbound(host: HostRef, network?: string, options: DropInboundOptions = {}): Promise<void> {
    const resolved = this.#resolve(host);
    await this.#addRule(resolved, this.#inboundRule(resolved, network, options));
  }

  /** Undoes {@link dropInbound} with the same arguments. */
  async allowInbound(host: HostRef, network?: string, options: DropInboundOptions = {}): Promise<void> {
    const resolved = this.#resolve(host);
    await this.#deleteRule(resolved, this.#inboundRule(resolved, network, options));
  }

  /**
   * Cuts every packet between two hosts, both ways and on every network they share: each drops
   * whatever arrives from the other's addresses, so connects time out and open connections stall,
   * as in a real partition.
   */
  async partition(a: HostRef, b: HostRef): Promise<void> {
    for (const [self, peer] of this.#pairs(a, b)) {
      for (const rule of this.#fromRules(peer)) await this.#addRule(self, rule);
    }
  }

  /** Undoes {@link partition}. */
  async heal(a: HostRef, b: HostRef): Promise<void> {
    for (const [self, peer] of this.#pairs(a, b)) {
      for (const rule of this.#fromRules(peer)) await this.#deleteRule(self, rule);
    }
  }

  /** Kills every child, deletes every namespace (and with them every interface and rule). Idempotent. */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#destroyAsync();
    return this.#destroyed;
  }

  async #build(): Promise<void> {
    for (const [network] of Object.entries(this.#spec.networks)) await this.#buildSwitch(network);
    for (const [host, attachments] of Object.entries(this.#spec.hosts)) {
      const netns = await this.#addNamespace(host);
      for (const [network, address] of Object.entries(attachments)) await this.#attach(host, netns, network, address);
      this.#hosts.set(host, this.#describeHost(host, netns, attachments));
    }
  }

  #switchName(network: string): string {
    return `${this.id}-sw-${network}`;
  }

  async #addNamespace(name: string): Promise<string> {
    const netns = `${this.id}-${name}`;
    // Recorded before it exists, so a crash while `ip netns add` runs still leaves it to destroy() (which tolerates a missing one).
    this.#namespaces.push(netns);
    await run(this.#tools.ip, ['netns', 'add', netns]);
    await run(this.#tools.ip, ['-n', netns, 'link', 'set', 'lo', 'up']);
    return netns;
  }

  /** A namespace holding only the network's bridge; with STP off (the default) its ports forward at once. */
  async #buildSwitch(network: string): Promise<void> {
    const netns = await this.#addNamespace(`sw-${network}`);
    await run(this.#tools.ip, ['-n', netns, 'link', 'add', BRIDGE, 'type', 'bridge']);
    await run(this.#tools.ip, ['-n', netns, 'link', 'set', BRIDGE, 'up']);
  }

  /**
   * A veth made inside the host namespace with its peer moved straight into the switch
   * namespace, so neither end ever exists in the root namespace. The host end is named after
   * the network, the switch end after the host; each is unique within its namespace.
   */
  async #attach(host: string, netns: string, network: string, address: string): Promise<void> {
    const switchNetns = this.#switchName(network);
    const port = `h-${host}`;
    await run(this.#tools.ip, ['-n', netns, 'link', 'add', network, 'type', 'veth', 'peer', 'name', port, 'netns', switchNetns]);
    await run(this.#tools.ip, ['-n', switchNetns, 'link', 'set', port, 'master', BRIDGE, 'up']);
    // Only the connected /24 route comes with the address: no default route, so other networks are unreachable.
    await run(this.#tools.ip, ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', network]);
    await run(this.#tools.ip, ['-n', netns, 'link', 'set', network, 'up']);
  }

  #describeHost(name: string, netns: string, attachments: Readonly<Record<string, string>>): NetnsHost {
    const onNetwork = (network: string): string => {
      if (attachments[network] === undefined) throw new Error(`netns harness: host ${name} is not on network ${network}`);
      return network;
    };
    return {
      name,
      netns,
      networks: Object.keys(attachments),
      address: (network) => attachments[onNetwork(network)] ?? '',
      interfaceName: onNetwork,
    };
  }

  #resolve(host: HostRef): NetnsHost {
    if (this.#destroyed !== undefined) throw new Error(`netns harness: topology ${this.id} is destroyed`);
    return this.host(typeof host === 'string' ? host : host.name);
  }

  #inboundRule(host: NetnsHost, network: string | undefined, options: DropInboundOptions): string[] {
    const from = network === undefined ? ['!', '-i', 'lo'] : ['-i', host.interfaceName(network)];
    const verdict = options.reject === true ? ['-j', 'REJECT', '--reject-with', 'tcp-reset'] : ['-j', 'DROP'];
    return ['INPUT', ...from, '-p', 'tcp', '-m', 'conntrack', '--ctstate', 'NEW', ...verdict];
  }

  #pairs(a: HostRef, b: HostRef): [NetnsHost, NetnsHost][] {
    const hostA = this.#resolve(a);
    const hostB = this.#resolve(b);
    return [
      [hostA, hostB],
      [hostB, hostA],
    ];
  }

  #fromRules(peer: NetnsHost): string[][] {
    return peer.networks.map((network) => ['INPUT', '-s', peer.address(network), '-j', 'DROP']);
  }

  /** Inserts at the top, so a partition also beats anything dropInbound left open. */
  async #addRule(host: NetnsHost, rule: string[]): Promise<void> {
    const key = `${host.netns} ${rule.join(' ')}`;
    if (this.#rules.has(key)) return;
    const [chain = '', ...spec] = rule;
    await run(this.#tools.ip, ['netns', 'exec', host.netns, this.#tools.iptables, '-w', '5', '-I', chain, '1', ...spec]);
    this.#rules.add(key);
  }

  async #deleteRule(host: NetnsHost, rule: string[]): Promise<void> {
    const key = `${host.netns} ${rule.join(' ')}`;
    if (!this.#rules.has(key)) return;
    await run(this.#tools.ip, ['netns', 'exec', host.netns, this.#tools.iptables, '-w', '5', '-D', ...rule]);
    this.#rules.delete(key);
  }

  async #destroyAsync(): Promise<void> {
    process.off('exit', this.#onExit);
    await Promise.all([...this.#children].map((child) => killAndWait(child)));
    this.#finishDestroy();
  }

  /** For process exit, where nothing asynchronous runs any more. */
  #destroySync(): void {
    for (const child of this.#children) child.kill('SIGKILL');
    this.#finishDestroy();
  }

  /** Deletes the namespaces (newest first: hosts before their switches) and the owner marker; throws if any delete failed. */
  #finishDestroy(): void {
    const failures: string[] = [];
    for (const netns of this.#namespaces.splice(0).reverse()) {
      const failure = deleteNamespaceSync(this.#tools.ip, netns);
      if (failure !== undefined) failures.push(failure);
    }
    this.#rules.clear();
    rmSync(markerPath(this.id), { force: true });
    if (failures.length > 0) throw new Error(`netns harness: could not delete namespaces of ${this.id}: ${failures.join('; ')}`);
  }
}

/** SIGKILLs a child and waits (bounded) until it has exited, so its namespace is not held open. */
async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, CHILD_EXIT_TIMEOUT_MS).unref())]);
}

/**
 * Builds the networks and hosts of `spec` as namespaces, bridges and veths. Also removes
 * namespaces that earlier, dead runs left. Throws a clear error if `ip` or `iptables` is
 * missing or the process is not root, so tests fail rather than skip.
 */
export function createTopology(spec: TopologySpec): Promise<Topology> {
  return Topology.create(spec);
}

/**
 * Builds `spec`, runs `fn` with it and always destroys it afterwards. Resolves with what `fn`
 * returned, or rejects with `fn`'s error (a destroy failure then does not mask it).
 */
export async function withTopology<T>(spec: TopologySpec, fn: (topology: Topology) => Promise<T>): Promise<T> {
  const topology = await createTopology(spec);
  let result: T;
  try {
    result = await fn(topology);
  } catch (error) {
    await topology.destroy().catch(() => undefined);
    throw error;
  }
  await topology.destroy();
  return result;
}
