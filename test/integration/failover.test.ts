// Failover through real processes: an endpoint's sidecar is killed -9 (its registration stays,
// as the control plane's lease outlives it); the client sidecar tries the next endpoint on the
// ring, ejects the dead one after three failed dials and leaves it alone until the back-off
// is over.
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startNamedApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';

const EJECT_AFTER = 3;
const EJECT_BACKOFF_MS = 2000;

describe('failover to the next endpoint', () => {
  let cp: ControlPlaneProcess;
  const apps: TestApp[] = [];
  const apiSidecars: SidecarProcess[] = [];
  let web: SidecarProcess;
  let port: number;
  const sources = Array.from({ length: 40 }, (_, i) => ({ localAddress: `127.0.1.${10 + i}` }));

  async function servedBy(source: { localAddress: string }): Promise<string> {
    const socket = await connect(port, source);
    const text = (await readAll(socket)).toString().trim();
    socket.end();
    return text;
  }

  const dialErrors = (): Promise<number> => scrapeMetric(web, 'trellis_sidecar_link_dial_seconds_count', { result: 'error' });
  const ejections = (): Promise<number> => scrapeMetric(web, 'trellis_sidecar_endpoint_ejections_total', { upstream: 'api' });

  before(async () => {
    // The dead endpoint stays registered for the whole test: only the client's ejection protects it.
    cp = await startControlPlane({ leaseTtl: '120s' });
    const token = await createToken(cp, 'api');
    for (const name of ['api-a', 'api-b']) {
      const app = await startNamedApp(name, { closeFirst: true });
      apps.push(app);
      apiSidecars.push(await startSidecar({ service: 'api', token, cp, app: app.address }));
    }
    const extra = ['--hash', 'api=source-ip', '--eject-after', String(EJECT_AFTER), '--eject-backoff', `${EJECT_BACKOFF_MS}ms`];
    web = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['api'], extra });
    port = web.upstreams.get('api')?.port ?? 0;
    await eventually(async () => (await sidecarStatus(web)).upstreams.find((u) => u.service === 'api')?.endpoints.length === 2, 'web to see both api endpoints');
  });

  after(async () => {
    await Promise.all([web?.proc.stop(), ...apiSidecars.map((s) => s.proc.stop())]);
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('sends new connections to the other endpoint, and dials the dead one again only after the back-off', async () => {
    const keysOfB: { localAddress: string }[] = [];
    for (const source of sources) if ((await servedBy(source)) === 'api-b') keysOfB.push(source);
    assert.ok(keysOfB.length >= 4, `enough keys on api-b (${keysOfB.length})`);
    const connectionsOfB = (count: number) => Array.from({ length: count }, (_, i) => keysOfB[i % keysOfB.length]!);

    await apiSidecars[1]!.proc.stop('SIGKILL');
    const dialErrorsBefore = await dialErrors();

    // The first connection may race the client sidecar noticing the dead link; none after it fails.
    const [first, ...rest] = connectionsOfB(EJECT_AFTER + 1);
    await servedBy(first!).catch(() => 'failed');
    for (const source of rest) assert.equal(await servedBy(source), 'api-a', 'served by the endpoint left');
    const ejectedAtMs = performance.now();
    assert.equal(await dialErrors(), dialErrorsBefore + EJECT_AFTER, 'one failed dial per connection until the ejection');
    assert.equal(await ejections(), 1);

    // Ejected: its keys go straight to api-a, without a dial to the dead endpoint.
    for (const source of connectionsOfB(10)) assert.equal(await servedBy(source), 'api-a');
    assert.ok(performance.now() - ejectedAtMs < EJECT_BACKOFF_MS, 'the check ran inside the back-off');
    assert.equal(await dialErrors(), dialErrorsBefore + EJECT_AFTER, 'no dial to an ejected endpoint');

    // After the back-off, one trial dial fails and ejects it again at once (for twice as long).
    await new Promise((resolve) => setTimeout(resolve, EJECT_BACKOFF_MS - (performance.now() - ejectedAtMs) + 100));
    for (const source of connectionsOfB(5)) assert.equal(await servedBy(source), 'api-a');
    assert.equal(await dialErrors(), dialErrorsBefore + EJECT_AFTER + 1, 'exactly one trial');
    assert.equal(await ejections(), 2);
  });
});
