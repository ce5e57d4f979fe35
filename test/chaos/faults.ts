// The faults a scenario injects into a running mesh: each returns when it has been undone, and
// records when it began and when it ended. Firewall and traffic-control changes live inside the
// topology's namespaces, so deleting the namespaces undoes them even after a failure.
import { writeFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChaosMesh, Role } from './mesh.js';

/** One fault: what, when it began, and when it was undone (the restart issued, the partition healed). */
export interface FaultEvent {
  readonly what: string;
  readonly at: number;
  readonly endsAt: number;
  /** The role SIGKILLed, if this fault was a kill. */
  readonly killed?: Role;
}

export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** kill -9 of a role's process, `downMs` without it, then a restart; resolves once it is up again. */
export async function killAndRestart(mesh: ChaosMesh, role: Role, downMs: number): Promise<FaultEvent> {
  const at = Date.now();
  await mesh.kill(role);
  await delay(downMs);
  const endsAt = Date.now();
  await mesh.restart(role);
  return { what: `kill -9 ${role}, restart after ${downMs} ms`, at, endsAt, killed: role };
}

/**
 * SIGTERM to a role's process (a graceful stop: a gateway drains), waits up to `exitWithinMs`
 * for it to exit by itself (`exit` is then its code, or 'timeout'), then starts it again. The
 * fault ends at the exit: from then on the role is down until the restart, as after a kill.
 */
export async function stopAndRestart(mesh: ChaosMesh, role: Role, exitWithinMs: number): Promise<FaultEvent & { exit: number | string; exitMs: number }> {
  const proc = mesh.process(role);
  const at = Date.now();
  proc.child.kill('SIGTERM');
  const exit = await Promise.race([proc.exited(), delay(exitWithinMs).then(() => 'timeout' as const)]);
  const endsAt = Date.now();
  await mesh.restart(role);
  return { what: `SIGTERM ${role} (exit ${String(exit)} after ${endsAt - at} ms), restart`, at, endsAt, exit, exitMs: endsAt - at };
}

/** Cuts every packet between two hosts for `forMs`, then heals. */
export async function partition(mesh: ChaosMesh, a: string, b: string, forMs: number): Promise<FaultEvent> {
  const at = Date.now();
  await mesh.topology.partition(a, b);
  try {
    await delay(forMs);
  } finally {
    await mesh.topology.heal(a, b);
  }
  return { what: `partition ${a} ↔ ${b} for ${forMs} ms`, at, endsAt: Date.now() };
}

async function inHost(mesh: ChaosMesh, host: string, command: string, args: string[]): Promise<void> {
  const result = await mesh.topology.exec(host, command, args, { timeoutMs: 10_000 });
  if (result.exitCode !== 0) throw new Error(`chaos: ${command} ${args.join(' ')} in ${host} failed: ${result.stderr.trim()}`);
}

/** Drops each packet that arrives at `hosts` from their networks with probability `probability`, for `forMs`. */
export async function packetLoss(mesh: ChaosMesh, hosts: readonly string[], probability: number, forMs: number): Promise<FaultEvent> {
  const rule = ['INPUT', '!', '-i', 'lo', '-m', 'statistic', '--mode', 'random', '--probability', String(probability), '-j', 'DROP'];
  const at = Date.now();
  for (const host of hosts) await inHost(mesh, host, 'iptables', ['-w', '5', '-I', ...rule]);
  try {
    await delay(forMs);
  } finally {
    for (const host of hosts) await inHost(mesh, host, 'iptables', ['-w', '5', '-D', ...rule]);
  }
  return { what: `${(probability * 100).toFixed(1)} % packet loss into ${hosts.join(', ')} for ${forMs} ms`, at, endsAt: Date.now() };
}

/**
 * Reordering and queueing delay on each host's interface to `network`: a random `share` of the
 * packets it sends goes through a slow class (`slowRate`, e.g. `4mbit`) while the rest pass at
 * once, so packets overtake each other and the slow ones wait in a queue. (The kernel here may
 * lack `netem`; HTB classes, a token bucket and the iptables `statistic` match do the same job.)
 */
export async function reorderAndDelay(mesh: ChaosMesh, hosts: readonly string[], network: string, share: number, slowRate: string, forMs: number): Promise<FaultEvent> {
  const classify = ['POSTROUTING', '-o', network, '-m', 'statistic', '--mode', 'random', '--probability', String(share), '-j', 'CLASSIFY', '--set-class', '1:20'];
  const at = Date.now();
  for (const host of hosts) {
    await inHost(mesh, host, 'tc', ['qdisc', 'add', 'dev', network, 'root', 'handle', '1:', 'htb', 'default', '10']);
    await inHost(mesh, host, 'tc', ['class', 'add', 'dev', network, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit']);
    await inHost(mesh, host, 'tc', ['class', 'add', 'dev', network, 'parent', '1:', 'classid', '1:20', 'htb', 'rate', slowRate, 'ceil', slowRate]);
    await inHost(mesh, host, 'tc', ['qdisc', 'add', 'dev', network, 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '1000']);
    await inHost(mesh, host, 'iptables', ['-w', '5', '-t', 'mangle', '-I', ...classify]);
  }
  try {
    await delay(forMs);
  } finally {
    for (const host of hosts) {
      await inHost(mesh, host, 'iptables', ['-w', '5', '-t', 'mangle', '-D', ...classify]);
      await inHost(mesh, host, 'tc', ['qdisc', 'del', 'dev', network, 'root']);
    }
  }
  return { what: `${Math.round(share * 100)} % of packets from ${hosts.join(', ')} through a ${slowRate} queue (reordered, delayed) for ${forMs} ms`, at, endsAt: Date.now() };
}

/** Fills the control plane's tmpfs with a file until writes fail with ENOSPC; returns the undo. */
export async function fillDisk(mesh: ChaosMesh): Promise<() => Promise<void>> {
  const filler = join(mesh.cpData.path, 'chaos-filler');
  const block = Buffer.alloc(256 * 1024);
  const chunks: Buffer[] = [];
  for (let i = 0; i < 64; i++) chunks.push(block);
  // Larger than the tmpfs: the write stops at ENOSPC, leaving it full.
  await writeFile(filler, Buffer.concat(chunks)).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOSPC') throw error;
  });
  return () => rm(filler, { force: true });
}
