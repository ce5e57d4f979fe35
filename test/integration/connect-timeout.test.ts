// The link dial timeout through real processes: one endpoint advertises a link address that
// accepts TCP and never answers the TLS handshake. Connections whose key it owns wait
// --connect-timeout, then go to the other endpoint; once ejected it costs them nothing.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';

const CONNECT_TIMEOUT_MS = 300;

interface Endpoint {
  sidecarId: string;
  address: string;
  weight: number;
}

describe('link dial timeout', () => {
  let cp: ControlPlaneProcess;
  let silent: net.Server;
  const apps: TestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let port: number;

  async function endpointsSeen(): Promise<Endpoint[]> {
    const status = (await (await fetch(`${web.adminUrl}/status`)).json()) as { upstreams: { service: string; endpoints: Endpoint[] }[] };
    return status.upstreams.find((u) => u.service === 'api')?.endpoints ?? [];
  }

  /** Which app served a connection from `localAddress`, and how long it took. */
  async function timedServe(localAddress: string): Promise<{ name: string; ms: number }> {
    const started = performance.now();
    const socket = await connect(port, { localAddress });
    const name = (await readAll(socket)).toString().trim();
    socket.end();
    return { name, ms: performance.now() - started };
  }

  before(async () => {
    cp = await startControlPlane();
    // Takes TCP connections and says nothing: a TLS handshake with it never ends.
    silent = net.createServer((socket) => socket.on('error', () => undefined));
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const silentAddress = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const token = await createToken(cp, 'api');
    for (const name of ['api-a', 'api-b']) {
      const app = await startNamedApp(name, { closeFirst: true });
      apps.push(app);
      const extra = name === 'api-b' ? ['--advertise', silentAddress] : [];
      apiSidecars.push(await startSidecar({ service: 'api', token, cp, app: app.address, extra }));
    }
    const extra = ['--hash', 'api=source-ip', '--connect-timeout', `${CONNECT_TIMEOUT_MS}ms`, '--eject-after', '2', '--eject-backoff', '30s'];
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'], extra });
    port = web.upstreams.get('api')?.port ?? 0;
    await eventually(async () => (await endpointsSeen()).length === 2, 'web to see both api endpoints');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), ...apiSidecars.map((s) => s.proc.stop())]);
    await cp?.proc.stop();
    silent?.close();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('gives up a hanging dial after the timeout and serves the connection from the next endpoint', async () => {
    // The balancer's own ring, fed what web sees, tells which addresses the silent endpoint owns.
    const endpoints = await endpointsSeen();
    const ring = new HashRingBalancer();
    ring.update('api', endpoints);
    const silentId = endpoints.find((e) => e.address !== apiSidecars[0]!.linkAddress)?.sidecarId;
    const addresses = Array.from({ length: 60 }, (_, i) => `127.0.3.${10 + i}`);
    const ownedBySilent = addresses.filter((address) => ring.candidates('api', address, 1)[0]?.sidecarId === silentId);
    assert.ok(ownedBySilent.length >= 4, `enough addresses on the silent endpoint (${ownedBySilent.length})`);

    for (const address of ownedBySilent.slice(0, 2)) {
      const { name, ms } = await timedServe(address);
      assert.equal(name, 'api-a');
      assert.ok(ms >= CONNECT_TIMEOUT_MS - 10, `served after ${Math.round(ms)} ms: the dial should have waited for the timeout`);
      assert.ok(ms < CONNECT_TIMEOUT_MS + 1000, `served after ${Math.round(ms)} ms`);
    }
    assert.equal(await scrapeMetric(web, 'trellis_sidecar_endpoint_ejections_total', { upstream: 'api' }), 1);
    // Ejected after two timeouts: its keys no longer wait.
    for (const address of ownedBySilent.slice(2)) {
      const { name, ms } = await timedServe(address);
      assert.equal(name, 'api-a');
      assert.ok(ms < CONNECT_TIMEOUT_MS, `served after ${Math.round(ms)} ms`);
    }
  });
});
