/**
 * Trellis: one control plane for the run, and per pair a client sidecar (`--upstream`) and a
 * server sidecar (`--app`), each its own `trellis` process, joined by a TLS 1.3 link with
 * mutual authentication.
 *
 * Two variants carry the same pair over other links (each with a control plane of its own):
 * - `trellis-gw`: the client sidecar in zone a, the server sidecar in zone c, and one gateway
 *   per zone (`trellis gateway`, started once for the run like the control plane): every
 *   stream crosses a tunnel client → gateway a → gateway c → server, with the two sidecars'
 *   own mutual TLS inside it (PROTOCOL.md, "Tunnels (version 2)"). Both gateways' CPU counts.
 * - `trellis-wss`: one zone, the server sidecar listening on `wss://`: the link is a WebSocket
 *   over HTTPS with the link's mutual TLS inside its binary messages.
 */
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { connectAdmin } from '../../cli/admin-client.js';
import { LOOPBACK } from '../net.js';
import type { ContenderId } from '../results.js';
import { TRELLIS_VARIANT_WORKLOADS, VARIANT_NOT_RUN } from '../results.js';
import type { ProcessSupervisor, SupervisedProcess } from '../supervisor.js';
import type { Contender, ContenderDeps, RunningContender } from './contender.js';
import { PROXY_START_TIMEOUT_MS } from './contender.js';

const APP_SERVICE = 'bench-app';
const CLIENT_SERVICE = 'bench-client';
/** Short, so that the endpoint of a stopped server sidecar leaves the ring before the next pair. */
const BENCH_LEASE_TTL = '1s';
const ENDPOINT_POLL_INTERVAL_MS = 50;
/** The zones of `trellis-gw`: the client sidecar's and the server sidecar's. */
const CLIENT_ZONE = 'a';
const SERVER_ZONE = 'c';
const GATEWAY_NAME = 'gw1';
/** The URL path a `trellis-wss` server sidecar takes WebSocket upgrades on (the default). */
const WS_LINK_PATH = '/trellis/link';

/** Which link joins the pair. */
export type TrellisLink = 'tls' | 'gateways' | 'wss';

const LINK_CONTENDER: Record<TrellisLink, ContenderId> = { tls: 'trellis', gateways: 'trellis-gw', wss: 'trellis-wss' };

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

/** Starts `trellis control-plane` on a fresh data directory and a free port (its file store, or a shared etcd). */
export async function startControlPlane(
  supervisor: ProcessSupervisor,
  repoRoot: string,
  dataDir: string,
  options: { manyFiles?: boolean; etcd?: { url: string; encryptionKeyFile: string } } = {},
): Promise<BenchControlPlane> {
  const store = options.etcd === undefined ? [] : ['--store', 'etcd', '--etcd', options.etcd.url, '--etcd-encryption-key-file', options.etcd.encryptionKeyFile];
  const [command, args] = trellisCommand(repoRoot, ['control-plane', '--data-dir', dataDir, '--listen', `${LOOPBACK}:0`, '--lease-ttl', BENCH_LEASE_TTL, ...store]);
  const proc = supervisor.spawn('trellis control plane', command, args, { manyFiles: options.manyFiles, env: { TRELLIS_LOG_LEVEL: 'warn' } });
  const [, url] = await proc.waitForOutput(/listening on (https:\/\/\S+)/, PROXY_START_TIMEOUT_MS);
  const [, adminTokenFile] = await proc.waitForOutput(/admin token written to (\S+)/, PROXY_START_TIMEOUT_MS);
  return { process: proc, url: url ?? '', dataDir, adminTokenFile: adminTokenFile ?? '' };
}

interface SharedTrellis {
  cp: BenchControlPlane;
  appToken: string;
  clientToken: string;
  /** `trellis-gw` only: the gateway of the client's zone and of the server's. */
  gateways: SupervisedProcess[];
}

export function createTrellisContender(deps: ContenderDeps, link: TrellisLink = 'tls'): Contender {
  let shared: Promise<SharedTrellis> | undefined;
  const trellis = (name: string, args: string[]): SupervisedProcess => {
    const [command, argv] = trellisCommand(deps.repoRoot, args);
    return deps.supervisor.spawn(name, command, argv, { manyFiles: true, env: { TRELLIS_LOG_LEVEL: 'warn' } });
  };
  const createToken = async (cp: BenchControlPlane, subject: string[]): Promise<string> => {
    const [command, args] = trellisCommand(deps.repoRoot, ['token', 'create', ...subject, '--ttl', '24h', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    const result = await deps.supervisor.run('trellis token create', command, args, PROXY_START_TIMEOUT_MS);
    if (result.code !== 0) throw new Error(`trellis token create failed: ${result.stderr.trim()}`);
    return result.stdout.trim();
  };
  const startGateways = async (cp: BenchControlPlane): Promise<SupervisedProcess[]> => {
    const gateways: SupervisedProcess[] = [];
    try {
      for (const zone of [CLIENT_ZONE, SERVER_ZONE]) {
        const token = await createToken(cp, ['--gateway', GATEWAY_NAME, '--zone', zone]);
        gateways.push(trellis(`trellis gateway ${zone}`, ['gateway', '--zone', zone, '--token', token, '--control-plane', cp.url, '--listen', `tls://${LOOPBACK}:0`, '--admin', `${LOOPBACK}:0`]));
      }
      await Promise.all(gateways.map((gateway) => waitForStart(gateway, /ready: links on (\S+)/)));
      await waitForRoute(cp, CLIENT_ZONE, SERVER_ZONE, [`${CLIENT_ZONE}/${GATEWAY_NAME}`, `${SERVER_ZONE}/${GATEWAY_NAME}`]);
      return gateways;
    } catch (error) {
      await Promise.all(gateways.map((gateway) => gateway.stop()));
      throw error;
    }
  };
  const setUp = async (): Promise<SharedTrellis> => {
    const cp = await startControlPlane(deps.supervisor, deps.repoRoot, await mkdtemp(join(deps.workDir, 'trellis-cp-')));
    try {
      const appToken = await createToken(cp, ['--service', APP_SERVICE]);
      const clientToken = await createToken(cp, ['--service', CLIENT_SERVICE]);
      return { cp, appToken, clientToken, gateways: link === 'gateways' ? await startGateways(cp) : [] };
    } catch (error) {
      await cp.process.stop();
      throw error;
    }
  };

  return {
    id: LINK_CONTENDER[link],
    ...(link === 'tls' ? {} : { workloads: TRELLIS_VARIANT_WORKLOADS, skipReason: VARIANT_NOT_RUN }),
    async close(): Promise<void> {
      if (shared === undefined) return;
      const setUpDone = await shared.catch(() => undefined);
      await Promise.all((setUpDone?.gateways ?? []).map((gateway) => gateway.stop()));
      await setUpDone?.cp.process.stop();
    },
    async start(appPort: number): Promise<RunningContender> {
      shared ??= setUp();
      const { cp, appToken, clientToken, gateways } = await shared;
      const dead = gateways.find((gateway) => !gateway.running);
      if (dead !== undefined) throw new Error(`${dead.name} is not running: ${dead.lastWords()}`);
      const workers = deps.sidecarWorkers ?? 1;
      const common = ['--control-plane', cp.url, '--admin', `${LOOPBACK}:0`, ...(workers === 1 ? [] : ['--workers', String(workers)])];
      const serverListen = link === 'wss' ? `wss://${LOOPBACK}:0${WS_LINK_PATH}` : `${LOOPBACK}:0`;
      const zone = (name: string): string[] => (link === 'gateways' ? ['--zone', name] : []);
      const server = trellis('trellis server sidecar', ['sidecar', '--service', APP_SERVICE, '--token', appToken, ...common, '--listen', serverListen, ...zone(SERVER_ZONE), '--app', `${LOOPBACK}:${appPort}`]);
      const client = trellis('trellis client sidecar', ['sidecar', '--service', CLIENT_SERVICE, '--token', clientToken, ...common, '--listen', `${LOOPBACK}:0`, ...zone(CLIENT_ZONE), '--upstream', `${APP_SERVICE}=${LOOPBACK}:0`]);
      const stop = async (): Promise<void> => {
        await Promise.all([client.stop(), server.stop()]);
      };
      try {
        const [, serverLinkAddress] = await waitForStart(server, /ready: links on (\S+)/);
        const [, upstreamPort] = await waitForStart(client, new RegExp(`upstream ${APP_SERVICE} on [^\\s:]+:(\\d+)`));
        const [, clientAdminUrl] = await client.waitForOutput(/admin on (http:\/\/\S+)/, PROXY_START_TIMEOUT_MS);
        await waitForSoleEndpoint(clientAdminUrl ?? '', serverLinkAddress ?? '');
        return {
          clientPort: Number(upstreamPort),
          sides: { client, server },
          serverSidePort: linkPort(serverLinkAddress ?? ''),
          ...(link === 'wss' ? { serverSideWsPath: WS_LINK_PATH } : {}),
          ...(gateways.length > 0 ? { relays: gateways } : {}),
          stop,
        };
      } catch (error) {
        await stop();
        throw error;
      }
    },
  };
}

/** A JSON log line of level error (50) or fatal (60). */
const ERROR_LINE = /\{[^\n]*"level":[56]\d,[^\n]*/;

/**
 * Waits for `pattern` in the output of a starting process, but fails at once when it logs an
 * error first (a sidecar the control plane refuses retries forever and never gets ready).
 */
async function waitForStart(proc: SupervisedProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  const error = proc.waitForOutput(ERROR_LINE, PROXY_START_TIMEOUT_MS).then(
    ([line]) => Promise.reject(new Error(`${proc.name} logged an error while starting: ${describeLogLine(line ?? '')}`)),
    // No error line before the process ended or the time ran out: the other wait reports that.
    () => new Promise<never>(() => undefined),
  );
  return Promise.race([proc.waitForOutput(pattern, PROXY_START_TIMEOUT_MS), error]);
}

/** The message, error and code of a JSON log line, or its start when it is not JSON. */
function describeLogLine(line: string): string {
  try {
    const entry = JSON.parse(line) as { msg?: string; err?: string; code?: string };
    return [entry.msg, entry.err, entry.code].filter((part) => part !== undefined).join(': ');
  } catch {
    return line.slice(0, 300);
  }
}

/** The port of a link address: `HOST:PORT`, `tls://HOST:PORT` or `wss://HOST:PORT/PATH`. */
function linkPort(address: string): number {
  const match = /:(\d+)(?:\/.*)?$/.exec(address);
  return Number(match?.[1]);
}

/**
 * Waits until the control plane publishes `path` as a route from zone `from` to zone `to`
 * (both gateways registered, their link reported), so the first tunnel of a pair finds it.
 */
async function waitForRoute(cp: BenchControlPlane, from: string, to: string, path: string[]): Promise<void> {
  const admin = await connectAdmin(cp.url, cp.adminTokenFile);
  const deadline = Date.now() + PROXY_START_TIMEOUT_MS;
  let seen = 'nothing';
  while (Date.now() < deadline) {
    const view = (await admin.call('GET', '/v1/gateways')) as { routes?: { from: string; to: string; paths: string[][] }[] };
    const route = view.routes?.find((candidate) => candidate.from === from && candidate.to === to);
    seen = JSON.stringify(route?.paths ?? []);
    if (route?.paths.some((candidate) => candidate.join(' ') === path.join(' ')) === true) return;
    await new Promise((resolve) => setTimeout(resolve, ENDPOINT_POLL_INTERVAL_MS));
  }
  throw new Error(`the control plane never published the route ${path.join(' > ')} from zone ${from} to ${to} (saw: ${seen})`);
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
