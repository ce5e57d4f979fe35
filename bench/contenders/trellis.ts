/**
 * Trellis: one control plane for the run, and per pair a client sidecar (`--upstream`) and a
 * server sidecar (`--app`), each its own `trellis` process, joined by a TLS 1.3 link with
 * mutual authentication.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { LOOPBACK } from '../net.js';
import type { ProcessSupervisor, SupervisedProcess } from '../supervisor.js';
import type { Contender, ContenderDeps, RunningContender } from './contender.js';
import { PROXY_START_TIMEOUT_MS } from './contender.js';

const APP_SERVICE = 'bench-app';
const CLIENT_SERVICE = 'bench-client';
/** Short, so that the endpoint of a stopped server sidecar leaves the ring before the next pair. */
const BENCH_LEASE_TTL = '1s';
const ENDPOINT_POLL_INTERVAL_MS = 50;

/** A control plane started by the benchmark. */
export interface BenchControlPlane {
  process: SupervisedProcess;
  url: string;
  dataDir: string;
  adminTokenFile: string;
}

/** The `trellis` command line as `node bin/trellis.js ARGS`. */
export function trellisCommand(repoRoot: string, args: string[]): [string, string[]] {
  return [process.execPath, [join(repoRoot, 'bin', 'trellis.js'), ...args]];
}

/** Starts `trellis control-plane` on a fresh data directory and a free port. */
export async function startControlPlane(supervisor: ProcessSupervisor, repoRoot: string, dataDir: string, options: { manyFiles?: boolean } = {}): Promise<BenchControlPlane> {
  const [command, args] = trellisCommand(repoRoot, ['control-plane', '--data-dir', dataDir, '--listen', `${LOOPBACK}:0`, '--lease-ttl', BENCH_LEASE_TTL]);
  const proc = supervisor.spawn('trellis control plane', command, args, { manyFiles: options.manyFiles, env: { TRELLIS_LOG_LEVEL: 'warn' } });
  const [, url] = await proc.waitForOutput(/listening on (https:\/\/\S+)/, PROXY_START_TIMEOUT_MS);
  const [, adminTokenFile] = await proc.waitForOutput(/admin token written to (\S+)/, PROXY_START_TIMEOUT_MS);
  return { process: proc, url: url ?? '', dataDir, adminTokenFile: adminTokenFile ?? '' };
}

export function createTrellisContender(deps: ContenderDeps): Contender {
  let shared: Promise<{ cp: BenchControlPlane; appToken: string; clientToken: string }> | undefined;
  const trellis = (name: string, args: string[]): SupervisedProcess => {
    const [command, argv] = trellisCommand(deps.repoRoot, args);
    return deps.supervisor.spawn(name, command, argv, { manyFiles: true, env: { TRELLIS_LOG_LEVEL: 'warn' } });
  };
  const createToken = async (cp: BenchControlPlane, service: string): Promise<string> => {
    const [command, args] = trellisCommand(deps.repoRoot, ['token', 'create', '--service', service, '--ttl', '24h', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    const result = await deps.supervisor.run('trellis token create', command, args, PROXY_START_TIMEOUT_MS);
    if (result.code !== 0) throw new Error(`trellis token create failed: ${result.stderr.trim()}`);
    return result.stdout.trim();
  };
  const setUp = async (): Promise<{ cp: BenchControlPlane; appToken: string; clientToken: string }> => {
    const cp = await startControlPlane(deps.supervisor, deps.repoRoot, await mkdtemp(join(deps.workDir, 'trellis-cp-')));
    return { cp, appToken: await createToken(cp, APP_SERVICE), clientToken: await createToken(cp, CLIENT_SERVICE) };
  };

  return {
    id: 'trellis',
    async close(): Promise<void> {
      if (shared === undefined) return;
      const { cp } = await shared.catch(() => ({ cp: undefined }));
      await cp?.process.stop();
    },
    async start(appPort: number): Promise<RunningContender> {
      shared ??= setUp();
      const { cp, appToken, clientToken } = await shared;
      const common = ['--control-plane', cp.url, '--listen', `${LOOPBACK}:0`, '--admin', `${LOOPBACK}:0`];
      const server = trellis('trellis server sidecar', ['sidecar', '--service', APP_SERVICE, '--token', appToken, ...common, '--app', `${LOOPBACK}:${appPort}`]);
      const client = trellis('trellis client sidecar', ['sidecar', '--service', CLIENT_SERVICE, '--token', clientToken, ...common, '--upstream', `${APP_SERVICE}=${LOOPBACK}:0`]);
      const stop = async (): Promise<void> => {
        await Promise.all([client.stop(), server.stop()]);
      };
      try {
        const [, serverLinkAddress] = await server.waitForOutput(/ready: links on (\S+)/, PROXY_START_TIMEOUT_MS);
        const [, upstreamPort] = await client.waitForOutput(new RegExp(`upstream ${APP_SERVICE} on [^\\s:]+:(\\d+)`), PROXY_START_TIMEOUT_MS);
        const [, clientAdminUrl] = await client.waitForOutput(/admin on (http:\/\/\S+)/, PROXY_START_TIMEOUT_MS);
        await waitForSoleEndpoint(clientAdminUrl ?? '', serverLinkAddress ?? '');
        return { clientPort: Number(upstreamPort), sides: { client, server }, serverSidePort: Number(serverLinkAddress?.split(':').at(-1)), stop };
      } catch (error) {
        await stop();
        throw error;
      }
    },
  };
}

/**
 * Waits until the client sidecar's ring holds exactly the new server sidecar, so that no
 * connection of the workload is hashed to the endpoint of a pair stopped earlier.
 */
async function waitForSoleEndpoint(adminUrl: string, linkAddress: string): Promise<void> {
  const deadline = Date.now() + PROXY_START_TIMEOUT_MS;
  let seen = 'nothing';
  while (Date.now() < deadline) {
    const status = (await (await fetch(`${adminUrl}/status`)).json()) as { upstreams?: { service: string; endpoints: { address: string }[] }[] };
    const endpoints = status.upstreams?.find((upstream) => upstream.service === APP_SERVICE)?.endpoints ?? [];
    seen = endpoints.map((endpoint) => endpoint.address).join(', ');
    if (endpoints.length === 1 && endpoints[0]?.address === linkAddress) return;
    await new Promise((resolve) => setTimeout(resolve, ENDPOINT_POLL_INTERVAL_MS));
  }
  throw new Error(`the client sidecar never saw ${linkAddress} as the only endpoint of ${APP_SERVICE} (saw: ${seen || 'none'})`);
}
