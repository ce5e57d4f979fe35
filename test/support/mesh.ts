import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectAdmin } from '../../cli/admin-client.js';
import { parseDurationMs } from '../../cli/args.js';
import type { TrellisProcess } from './processes.js';
import { runTrellis, spawnTrellis } from './processes.js';

/** A control plane running as its own process. */
export interface ControlPlaneProcess {
  proc: TrellisProcess;
  url: string;
  dataDir: string;
  adminTokenFile: string;
}

export async function startControlPlane(options: { dataDir?: string; listen?: string; leaseTtl?: string; certTtl?: string; extra?: string[] } = {}): Promise<ControlPlaneProcess> {
  const dir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'trellis-cp-')));
  const args = ['control-plane', '--data-dir', dir, '--listen', options.listen ?? '127.0.0.1:0'];
  if (options.leaseTtl !== undefined) args.push('--lease-ttl', options.leaseTtl);
  if (options.certTtl !== undefined) args.push('--cert-ttl', options.certTtl);
  args.push(...(options.extra ?? []));
  const proc = spawnTrellis(args);
  const [, url] = await proc.waitForOutput(/listening on (https:\/\/\S+)/);
  const [, adminTokenFile] = await proc.waitForOutput(/admin token written to (\S+)/);
  return { proc, url: url ?? '', dataDir: dir, adminTokenFile: adminTokenFile ?? '' };
}

/**
 * A join token for `service`, asked of the admin API in this process as `trellis token create`
 * asks it (same client, same request): set-up of a test, not the CLI under test, so it costs
 * no process start. The command itself has its own tests (token-lifecycle-cli, token-cli).
 */
export async function createToken(cp: ControlPlaneProcess, service: string, ttl = '1h'): Promise<string> {
  const admin = await connectAdmin(cp.url, cp.adminTokenFile);
  const answer = (await admin.call('POST', '/v1/tokens', { service, ttlSeconds: Math.round(parseDurationMs(ttl, '--ttl') / 1000) })) as { token: string };
  return answer.token;
}

export async function setPolicy(cp: ControlPlaneProcess, args: string[]): Promise<void> {
  const result = await runTrellis(['policy', ...args, '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
  assert.equal(result.code, 0, `policy ${args.join(' ')} failed: ${result.stderr}`);
}

/** A gateway join token for `name` of `zone`, asked of the admin API in this process (see {@link createToken}). */
export async function createGatewayToken(cp: ControlPlaneProcess, zone: string, name: string): Promise<string> {
  const admin = await connectAdmin(cp.url, cp.adminTokenFile);
  const answer = (await admin.call('POST', '/v1/tokens', { gateway: name, zone, ttlSeconds: 86_400 })) as { token: string };
  return answer.token;
}

/** A sidecar running as its own process, with the addresses it printed once ready. */
/** A gateway running as its own process, with the link URL it listens on. */
export interface GatewayProcess {
  proc: TrellisProcess;
  url: string;
  adminUrl: string;
}

/** Starts gateway `name` of `zone` on loopback, joined with a gateway token of its own. */
export async function startGateway(cp: ControlPlaneProcess, zone: string, name: string): Promise<GatewayProcess> {
  const proc = spawnTrellis(['gateway', '--zone', zone, '--token', await createGatewayToken(cp, zone, name), '--control-plane', cp.url, '--listen', 'tls://127.0.0.1:0', '--admin', '127.0.0.1:0']);
  const [, url] = await proc.waitForOutput(/links on (tls:\/\/\S+)/);
  const [, adminUrl] = await proc.waitForOutput(/admin on (http:\/\/\S+)/);
  return { proc, url: url ?? '', adminUrl: adminUrl ?? '' };
}

export interface SidecarProcess {
  proc: TrellisProcess;
  service: string;
  linkAddress: string;
  adminUrl: string;
  upstreams: Map<string, { host: string; port: number }>;
}

export interface SidecarOptions {
  service: string;
  /** Omitted: the sidecar starts from the identity in `dataDir`. */
  token?: string;
  cp: ControlPlaneProcess;
  /** @default 127.0.0.1:0 */
  listen?: string;
  app?: string;
  upstreams?: string[];
  dataDir?: string;
  extra?: string[];
}

export async function startSidecar(options: SidecarOptions): Promise<SidecarProcess> {
  const args = ['sidecar', '--service', options.service, '--control-plane', options.cp.url];
  if (options.token !== undefined) args.push('--token', options.token);
  args.push('--listen', options.listen ?? '127.0.0.1:0', '--admin', '127.0.0.1:0');
  if (options.app !== undefined) args.push('--app', options.app);
  for (const upstream of options.upstreams ?? []) args.push('--upstream', `${upstream}=127.0.0.1:0`);
  if (options.dataDir !== undefined) args.push('--data-dir', options.dataDir);
  args.push(...(options.extra ?? []));
  const proc = spawnTrellis(args);
  const [, linkAddress] = await proc.waitForOutput(/ready: links on (\S+)/);
  const [, adminAddress] = await proc.waitForOutput(/admin on (http:\/\/\S+)/);
  const upstreams = new Map<string, { host: string; port: number }>();
  for (const match of proc.stdout().matchAll(/upstream (\S+) on (\S+):(\d+)/g)) {
    upstreams.set(match[1] ?? '', { host: match[2] ?? '', port: Number(match[3]) });
  }
  return { proc, service: options.service, linkAddress: linkAddress ?? '', adminUrl: adminAddress ?? '', upstreams };
}

/** The value of one sample of a Prometheus text exposition, or 0 when absent. */
export async function scrapeMetric(sidecar: { adminUrl: string }, name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = await (await fetch(`${sidecar.adminUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`))) return Number(line.split(' ').at(-1));
  }
  return 0;
}

/** Config version and endpoints a sidecar sees, from its /status. */
export async function sidecarStatus(sidecar: SidecarProcess): Promise<{ configVersion: number; upstreams: { service: string; endpoints: { sidecarId: string }[] }[] }> {
  return (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { configVersion: number; upstreams: { service: string; endpoints: { sidecarId: string }[] }[] };
}

/** Polls `probe` until it returns true (external processes give no events to wait on). */
export async function eventually(probe: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Removes temporary directories made by a test. */
export async function removeDirs(...dirs: string[]): Promise<void> {
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
}
