// Active health checks through real processes: an app goes down next to a live sidecar, and
// other sidecars stop sending it traffic within two check intervals; it comes back, and so
// does its traffic.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';

const CHECK_INTERVAL_MS = 500;
/** Time for the verdict to reach the client sidecar: a health message, a 20 ms push window, and polling. */
const PUSH_SLACK_MS = 300;

interface Status {
  sidecarId: string;
  appHealthy?: boolean;
  upstreams: { service: string; endpoints: { sidecarId: string }[] }[];
}

async function statusOf(sidecar: SidecarProcess): Promise<Status> {
  return (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as Status;
}

/** Polls quickly (the test measures a time) until `probe` holds; resolves with the ms it took from `sinceMs`. */
async function msUntil(probe: () => Promise<boolean>, sinceMs: number, what: string): Promise<number> {
  const deadline = sinceMs + 20_000;
  while (!(await probe())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return performance.now() - sinceMs;
}

describe('active health checks of the app', () => {
  let cp: ControlPlaneProcess;
  const apps: TestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let port: number;
  const sources = Array.from({ length: 16 }, (_, i) => ({ localAddress: `127.0.0.${20 + i}` }));

  async function servedBy(source: { localAddress: string }): Promise<string> {
    const socket = await connect(port, source);
    const text = (await readAll(socket)).toString().trim();
    socket.end();
    return text;
  }

  async function endpointIds(): Promise<string[]> {
    const status = await statusOf(web);
    return (status.upstreams.find((u) => u.service === 'api')?.endpoints ?? []).map((e) => e.sidecarId);
  }

  before(async () => {
    cp = await startControlPlane();
    const token = await createToken(cp, 'api');
    for (const name of ['api-a', 'api-b']) {
      const app = await startNamedApp(name, { closeFirst: true });
      apps.push(app);
      const extra = ['--health-check', 'tcp', '--health-interval', `${CHECK_INTERVAL_MS}ms`];
      apiSidecars.push(await startSidecar({ service: 'api', token, cp, app: app.address, extra }));
    }
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    port = web.upstreams.get('api')?.port ?? 0;
    await eventually(async () => (await endpointIds()).length === 2, 'web to see both api endpoints');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), ...apiSidecars.map((s) => s.proc.stop())]);
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('takes an endpoint out within two check intervals of its app going down, and back once the app is up', async (t) => {
    const bSidecar = apiSidecars[1]!;
    const bId = (await statusOf(bSidecar)).sidecarId;
    const bPort = apps[1]!.port;
    const before = new Set<string>();
    for (const source of sources) before.add(await servedBy(source));
    assert.deepEqual(before, new Set(['api-a', 'api-b']), 'traffic reaches both endpoints first');

    // The app goes away; its sidecar stays up and connected.
    await apps[1]!.close();
    const downAtMs = performance.now();
    const goneAfterMs = await msUntil(async () => !(await endpointIds()).includes(bId), downAtMs, 'the endpoint to leave');
    t.diagnostic(`endpoint left ${Math.round(goneAfterMs)} ms after its app went down`);
    assert.ok(goneAfterMs <= 2 * CHECK_INTERVAL_MS + PUSH_SLACK_MS, `left after ${Math.round(goneAfterMs)} ms`);
    assert.equal((await statusOf(bSidecar)).appHealthy, false);
    assert.deepEqual(await endpointIds(), [(await statusOf(apiSidecars[0]!)).sidecarId]);
    for (const source of sources) assert.equal(await servedBy(source), 'api-a', 'no traffic to the unhealthy endpoint');

    // The app comes back on its port: one passed check brings the endpoint back.
    apps[1] = await startNamedApp('api-b', { closeFirst: true, port: bPort });
    const upAtMs = performance.now();
    const backAfterMs = await msUntil(async () => (await endpointIds()).includes(bId), upAtMs, 'the endpoint to return');
    t.diagnostic(`endpoint back ${Math.round(backAfterMs)} ms after its app came up`);
    assert.ok(backAfterMs <= CHECK_INTERVAL_MS + PUSH_SLACK_MS, `back after ${Math.round(backAfterMs)} ms`);
    assert.equal((await statusOf(bSidecar)).appHealthy, true);
    const after = new Set<string>();
    for (const source of sources) after.add(await servedBy(source));
    assert.deepEqual(after, new Set(['api-a', 'api-b']), 'traffic reaches the endpoint again');
  });
});
