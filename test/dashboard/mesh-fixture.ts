/**
 * The mesh the dashboard's browser tests look at, as real processes: a control plane, two
 * instances of `api` (real HTTP apps behind their sidecars), `web` calling api, a gateway, and
 * traffic from web to api through the mesh.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { HttpTestApp } from '../support/http-app.js';
import { startHttpApp } from '../support/http-app.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';
import type { TrellisProcess } from '../support/processes.js';
import { runTrellis, spawnTrellis } from '../support/processes.js';

/** Sidecars report every 5 s: a few reports' worth on a loaded machine. */
export const LIVE_TIMEOUT_MS = 60_000;

/** GETs through the caller's upstream port, one new connection each, bounded in count and time. */
export class TrafficLoop {
  ok = 0;
  refused = 0;
  #running = true;
  readonly #done: Promise<void>;

  constructor(port: number, maxRequests = 5000, maxMs = 240_000) {
    const deadline = Date.now() + maxMs;
    this.#done = (async () => {
      for (let i = 0; i < maxRequests && this.#running && Date.now() < deadline; i++) {
        if (await getOnce(port)) this.ok += 1;
        else this.refused += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#done;
  }
}

/** Whether a GET through the mesh got the app's answer (a refused stream closes the connection unanswered). */
export function getOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve(response.statusCode === 200 && body.startsWith('api ')));
      response.on('error', () => resolve(false));
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(false));
  });
}

/** The running mesh; `stop()` ends every process and removes the control plane's data. */
export interface DashboardMesh {
  cp: ControlPlaneProcess;
  adminToken: string;
  apiSidecars: SidecarProcess[];
  web: SidecarProcess;
  gateway: TrellisProcess;
  traffic: TrafficLoop;
  /** The port of web's upstream listener for api. */
  webToApiPort: number;
  stop(): Promise<void>;
}

/**
 * Starts the mesh and traffic once web sees both api endpoints. A set-up that fails half way
 * stops what it started before throwing, so a test's `after` has nothing of it to clean.
 */
export async function startDashboardMesh(): Promise<DashboardMesh> {
  const started: { cp?: ControlPlaneProcess; apps: HttpTestApp[]; sidecars: SidecarProcess[]; gateway?: TrellisProcess; traffic?: TrafficLoop } = { apps: [], sidecars: [] };
  const stop = async (): Promise<void> => {
    await started.traffic?.stop();
    await Promise.all([started.gateway?.stop(), ...started.sidecars.map((s) => s.proc.stop()), started.cp?.proc.stop()]);
    await Promise.all(started.apps.map((app) => app.close()));
    await removeDirs(started.cp?.dataDir ?? '');
  };
  try {
    const cp = (started.cp = await startControlPlane({ leaseTtl: '2s' }));
    const adminToken = (await readFile(cp.adminTokenFile, 'utf8')).trim();
    const apiToken = await createToken(cp, 'api');
    const apiSidecars: SidecarProcess[] = [];
    for (let i = 0; i < 2; i++) {
      const app = await startHttpApp('api');
      started.apps.push(app);
      const sidecar = await startSidecar({ service: 'api', token: apiToken, cp, app: app.address });
      started.sidecars.push(sidecar);
      apiSidecars.push(sidecar);
    }
    const web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    started.sidecars.push(web);
    const gatewayToken = await runTrellis(['token', 'create', '--gateway', 'edge', '--zone', 'default', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(gatewayToken.code, 0, gatewayToken.stderr);
    const gateway = (started.gateway = spawnTrellis(['gateway', '--zone', 'default', '--name', 'edge', '--token', gatewayToken.stdout.trim(), '--control-plane', cp.url, '--listen', 'tls://127.0.0.1:0']));
    await gateway.waitForOutput(/gateway default\/edge ready/);
    await eventually(async () => (await sidecarStatus(web)).upstreams.every((u) => u.endpoints.length === 2), 'web to see both endpoints of api');
    const webToApiPort = web.upstreams.get('api')?.port ?? 0;
    const traffic = (started.traffic = new TrafficLoop(webToApiPort));
    return { cp, adminToken, apiSidecars, web, gateway, traffic, webToApiPort, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The sidecar id each sidecar reports on its admin endpoint. */
export async function sidecarIds(sidecars: SidecarProcess[]): Promise<string[]> {
  return Promise.all(sidecars.map(async (s) => ((await (await fetch(`${s.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId));
}
