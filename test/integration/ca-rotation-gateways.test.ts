// CA rotation across zones: the trust bundle reaches the gateways too, their leaves are
// re-issued from the new root, and traffic through a tunnel (outer links to the gateways,
// inner mutual TLS between the end sidecars) flows throughout with nothing reset or refused.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { CaStatus } from '../../proto/control.js';
import { caStatusSchema } from '../../proto/control.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startSinkSourceApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startGateway, startSidecar } from '../support/mesh.js';
import type { TrellisProcess } from '../support/processes.js';
import { runTrellis } from '../support/processes.js';
import { sumMetric, TrafficLoad } from '../support/traffic.js';

/** A gateway, with the name the test's messages give it. */
async function startNamedGateway(cp: ControlPlaneProcess, zone: string, name: string): Promise<{ proc: TrellisProcess; adminUrl: string; service: string }> {
  return { ...(await startGateway(cp, zone, name)), service: `gateway ${zone}/${name}` };
}

async function caStatus(cp: ControlPlaneProcess): Promise<CaStatus> {
  const result = await runTrellis(['ca', 'status', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
  assert.equal(result.code, 0, `ca status failed: ${result.stderr}`);
  return caStatusSchema.parse(JSON.parse(result.stdout));
}

async function troubleOf(process: { adminUrl: string }): Promise<Record<string, number>> {
  return {
    streamErrors: await sumMetric(process, 'trellis_sidecar_stream_errors_total'),
    failedDials: await scrapeMetric(process, 'trellis_sidecar_link_dial_seconds_count', { result: 'error' }),
    refusedLinks: await sumMetric(process, 'trellis_link_refusals_total'),
    refusedTunnels: await sumMetric(process, 'trellis_tunnel_refusals_total'),
  };
}

describe('CA rotation across gateways', () => {
  let cp: ControlPlaneProcess;
  const appBytes = randomBytes(32 * 1024);
  let app: TestApp;
  const running: { proc: TrellisProcess; adminUrl: string; service: string }[] = [];

  before(async () => {
    cp = await startControlPlane({ certTtl: '1h' });
  });

  after(async () => {
    // Sidecars drain first; the gateways then carry nothing.
    await Promise.all(running.filter((p) => !p.service.startsWith('gateway')).map((p) => p.proc.stop()));
    await Promise.all(running.filter((p) => p.service.startsWith('gateway')).map((p) => p.proc.stop()));
    await cp?.proc.stop();
    await app?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('re-issues gateway and sidecar leaves from the new root with tunnel traffic flowing', async () => {
    const ga = await startNamedGateway(cp, 'a', 'ga');
    const gc = await startNamedGateway(cp, 'c', 'gc');
    running.push(ga, gc);
    app = await startSinkSourceApp(appBytes);
    const sink: SidecarProcess = await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: app.address, extra: ['--zone', 'c'] });
    const client: SidecarProcess = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['sink'], extra: ['--zone', 'a'] });
    running.push(sink, client);
    await eventually(async () => (await scrapeMetric(ga, 'trellis_sidecar_links_active')) >= 1, 'the link between the gateways');
    const port = client.upstreams.get('sink')?.port ?? 0;
    await eventually(async () => {
      const socket = await connect(port);
      const reply = readAll(socket);
      socket.end();
      return (await reply).length === appBytes.length + 64;
    }, 'a first stream through the tunnel');
    const oldRoot = (await caStatus(cp)).roots[0]?.fingerprint;

    const load = new TrafficLoad({ port, appBytes, longStreams: 3 });
    try {
      const rotate = await runTrellis(['ca', 'rotate', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
      assert.equal(rotate.code, 0, rotate.stderr);
      let final: CaStatus | undefined;
      await eventually(async () => (final = await caStatus(cp)).complete, 'the rotation to complete', 60_000);
      const newRoot = final?.roots[0]?.fingerprint;
      assert.notEqual(newRoot, oldRoot);
      assert.equal(final?.roots.length, 1);
      const holders = final?.leaves ?? [];
      assert.equal(holders.filter((leaf) => leaf.id.startsWith('gw-')).length, 2, 'both gateways hold leaves');
      assert.ok(holders.every((leaf) => leaf.rootFingerprint === newRoot), 'every leaf is of the new root');

      // A sidecar that joins now knows only the new root: new links to the gateway and a new
      // tunnel to the sink work only if all of them present and trust it.
      const late = await startSidecar({ service: 'late', token: await createToken(cp, 'late'), cp, upstreams: ['sink'], extra: ['--zone', 'a'] });
      running.push(late);
      const latePort = late.upstreams.get('sink')?.port ?? 0;
      for (let i = 0; i < 5; i += 1) {
        const socket = await connect(latePort);
        const reply = readAll(socket);
        const sent = randomBytes(16 * 1024);
        socket.end(sent);
        assert.equal(sha256(await reply), sha256(Buffer.concat([appBytes, Buffer.from(sha256(sent))])));
      }
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.equal(result.longStreamsOk, 3, 'every long stream outlived the rotation, byte-exact');
      assert.ok(result.shortStreamsOk > 20, `short streams: ${result.shortStreamsOk}`);
    }
    for (const process of running) {
      assert.deepEqual(await troubleOf(process), { streamErrors: 0, failedDials: 0, refusedLinks: 0, refusedTunnels: 0 }, process.service);
    }
  });
});
