// Consistent hashing through real processes: two endpoints of one service behind one upstream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';

interface Endpoint {
  sidecarId: string;
  address: string;
  weight: number;
}

describe('balancing over two endpoints', () => {
  let cp: ControlPlaneProcess;
  const apps: TestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let port: number;

  /** Source addresses and ports that make the ring key; the test picks them to repeat keys. */
  const sources = Array.from({ length: 24 }, (_, i) => ({ localAddress: `127.0.0.${10 + i}`, localPort: 41000 + i }));

  /** Which app instance served a connection from `source` (the app names itself, then closes first). */
  async function servedBy(source: { localAddress: string; localPort: number }): Promise<string> {
    const socket = await connect(port, source);
    const reply = readAll(socket);
    const text = (await reply).toString().trim();
    socket.end(); // the app closed first, so this port is free again at once
    return text;
  }

  async function endpointsSeen(): Promise<Endpoint[]> {
    const status = (await sidecarStatus(web)) as unknown as { upstreams: { service: string; endpoints: Endpoint[] }[] };
    return status.upstreams.find((u) => u.service === 'api')?.endpoints ?? [];
  }

  before(async () => {
    cp = await startControlPlane({ leaseTtl: '1s' });
    const token = await createToken(cp, 'api');
    for (const name of ['api-a', 'api-b']) {
      const app = await startNamedApp(name, { closeFirst: true });
      apps.push(app);
      apiSidecars.push(await startSidecar({ service: 'api', token, cp, app: app.address }));
    }
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'] });
    port = web.upstreams.get('api')?.port ?? 0;
    await eventually(async () => (await endpointsSeen()).length === 2, 'web to see both api endpoints');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), ...apiSidecars.map((s) => s.proc.stop())]);
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('sends a key to the same endpoint every time, spreads keys over both, and moves only the keys of one that leaves', async () => {
    const first = new Map<string, string>();
    for (const source of sources) first.set(source.localAddress, await servedBy(source));
    for (const source of sources) assert.equal(await servedBy(source), first.get(source.localAddress), `same key ${source.localAddress}:${source.localPort}`);
    assert.deepEqual(new Set(first.values()), new Set(['api-a', 'api-b']), 'keys spread over both endpoints');

    // The pick is the ring's: the same balancer, fed what the sidecar saw, predicts every one.
    const endpoints = await endpointsSeen();
    const ring = new HashRingBalancer();
    ring.update('api', endpoints);
    const nameOf = new Map<string, string>();
    for (const source of sources) {
      const id = ring.candidates('api', `${source.localAddress}:${source.localPort}`, 1)[0]?.sidecarId ?? '';
      const name = first.get(source.localAddress) ?? '';
      assert.equal(nameOf.get(id) ?? name, name, 'one sidecar id serves one app');
      nameOf.set(id, name);
    }

    await apiSidecars[1]?.proc.stop();
    await eventually(async () => (await endpointsSeen()).length === 1, 'the stopped endpoint to leave');
    for (const source of sources) {
      const now = await servedBy(source);
      assert.equal(now, 'api-a', 'every key lands on the endpoint that is left');
      if (first.get(source.localAddress) === 'api-a') assert.equal(now, 'api-a', 'keys of the remaining endpoint stay');
    }
  });
});
