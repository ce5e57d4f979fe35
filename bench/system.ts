/**
 * The machine under the benchmark: what it is (for the report), the tools the contenders and
 * workloads drive (installed from Debian when missing), and the memory of a process.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { delimiter, join } from 'node:path';

/** A command the benchmark runs, and the Debian package that provides it. */
export interface ToolRequirement {
  command: string;
  debianPackage: string;
}

/** Every external command of the benchmark. */
export const REQUIRED_TOOLS: readonly ToolRequirement[] = [
  { command: 'openssl', debianPackage: 'openssl' },
  { command: 'stunnel4', debianPackage: 'stunnel4' },
  { command: 'haproxy', debianPackage: 'haproxy' },
  { command: 'redis-server', debianPackage: 'redis-server' },
  { command: 'redis-benchmark', debianPackage: 'redis-tools' },
  { command: 'redis-cli', debianPackage: 'redis-tools' },
  { command: 'iperf3', debianPackage: 'iperf3' },
  { command: 'etcd', debianPackage: 'etcd-server' },
];

/** Absolute paths of the tools, resolved once after installation. */
export type ToolPaths = Record<string, string>;

/** What the report says about the machine. */
export interface MachineInfo {
  cores: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
  nodeOpenssl: string;
  systemOpenssl: string;
  /** Open files a proxy process may hold; proxies needing two per connection get half as many connections. */
  openFilesLimit: number;
  tools: Record<string, string>;
}

/** Directories searched besides PATH: Debian puts daemons such as haproxy in sbin. */
const EXTRA_BIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const APT_TIMEOUT_MS = 10 * 60_000;

/** Finds `command` on PATH or in the sbin directories; undefined when absent. */
export function findExecutable(command: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...EXTRA_BIN_DIRS].filter((dir) => dir !== '');
  for (const dir of dirs) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/**
 * Installs the Debian packages of missing tools (one `apt-get update`, one install), then
 * returns every tool's path.
 * @throws Error naming what is missing when it cannot be installed (not root, no apt-get).
 */
export function ensureTools(requirements: readonly ToolRequirement[], progress: (line: string) => void): ToolPaths {
  const missing = requirements.filter((tool) => findExecutable(tool.command) === undefined);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((tool) => tool.debianPackage))];
    if (findExecutable('apt-get') === undefined || process.getuid?.() !== 0) {
      throw new Error(`missing ${missing.map((tool) => tool.command).join(', ')}: install the Debian packages ${packages.join(' ')} (needs root and apt-get)`);
    }
    progress(`installing Debian packages: ${packages.join(' ')}`);
    const aptEnv = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'], timeout: APT_TIMEOUT_MS, env: aptEnv });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], timeout: APT_TIMEOUT_MS, env: aptEnv });
  }
  const paths: ToolPaths = {};
  for (const tool of requirements) {
    const path = findExecutable(tool.command);
    if (path === undefined) throw new Error(`${tool.command} is still missing after installing ${tool.debianPackage}`);
    paths[tool.command] = path;
  }
  return paths;
}

/** The path of a tool that {@link ensureTools} resolved. */
export function toolPath(paths: ToolPaths, command: string): string {
  const path = paths[command];
  if (path === undefined) throw new Error(`tool ${command} was not resolved`);
  return path;
}

export function describeMachine(paths: ToolPaths, openFilesLimit: number): MachineInfo {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    nodeOpenssl: process.versions.openssl,
    systemOpenssl: firstLine(paths['openssl'], ['version'], /OpenSSL \S+/),
    openFilesLimit,
    tools: {
      stunnel: firstLine(paths['stunnel4'], ['-version'], /stunnel \S+/),
      haproxy: firstLine(paths['haproxy'], ['-v'], /HAProxy version \S+/),
      redis: firstLine(paths['redis-server'], ['--version'], /v=\S+/),
      iperf3: firstLine(paths['iperf3'], ['--version'], /iperf \S+/),
    },
  };
}

/** First line (or the part matching `pick`) of a version command's output. */
function firstLine(command: string | undefined, args: string[], pick?: RegExp): string {
  if (command === undefined) return 'unknown';
  // stunnel prints its version on stderr, so both streams are read, whatever the exit code.
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  return pickLine(`${result.stdout ?? ''}\n${result.stderr ?? ''}`, pick);
}

function pickLine(output: string, pick: RegExp | undefined): string {
  if (pick !== undefined) return pick.exec(output)?.[0] ?? 'unknown';
  return output.split('\n').find((line) => line.trim() !== '')?.trim() ?? 'unknown';
}

/**
 * Memory of one process from /proc, in MB (10^6 bytes, the stricter reading of a "MB" target):
 * current resident set and its peak (high-water mark).
 */
export interface ProcessMemoryMB {
  rssMB: number;
  peakRssMB: number;
}

/** Reads VmRSS and VmHWM of `pid`. @throws Error when the process is gone. */
export async function readProcessMemory(pid: number): Promise<ProcessMemoryMB> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const rssKiB = kib('VmRSS');
  const peakKiB = kib('VmHWM');
  if (!Number.isFinite(rssKiB) || !Number.isFinite(peakKiB)) throw new Error(`no memory figures for pid ${pid}`);
  return { rssMB: (rssKiB * 1024) / 1e6, peakRssMB: (peakKiB * 1024) / 1e6 };
}

/** Number of threads of `pid` (stunnel runs one per connection). */
export async function readThreadCount(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 0);
}

/** Clock ticks per second of /proc/PID/stat's times (`getconf CLK_TCK`; 100 on Linux when unknown). */
export function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/**
 * CPU seconds (user + system) that `pid` has used so far, from /proc/PID/stat. A pair's CPU
 * for a fixed amount of work barely moves with other load on the machine, unlike its
 * throughput. `ticksPerSecond` comes from {@link clockTicksPerSecond}.
 * @throws Error when the process is gone.
 */
export async function readProcessCpuSeconds(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields 14 (utime) and 15 (stime) of the whole line are 12 and 13 after the name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isFinite(ticks)) throw new Error(`no CPU times for pid ${pid}`);
  return ticks / ticksPerSecond;
}
