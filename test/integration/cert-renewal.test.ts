// Leaf certificates renew at half-life under continuous traffic: links and streams stay up,
// links dialled after a renewal present the new certificate, nothing fails or resets; and a
// renewal that cannot reach the control plane is counted.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { startSinkSourceApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { sumMetric, TrafficLoad } from '../support/traffic.js';

/** Short enough for several renewals in a test, long enough for a loaded machine to renew in time. */
const CERT_TTL_MS = 6000;
const RENEWALS_PER_SIDECAR = 3;

async function certExpiresAt(sidecar: SidecarProcess): Promise<number> {
  const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { certExpiresAt: string };
  return Date.parse(status.certExpiresAt);
}

/** Everything that would show a failed handshake, a refused link or a reset stream. */
async function troubleOf(sidecar: SidecarProcess): Promise<Record<string, number>> {
  return {
    streamErrors: await sumMetric(sidecar, 'trellis_sidecar_stream_errors_total'),
    failedDials: await scrapeMetric(sidecar, 'trellis_sidecar_link_dial_seconds_count', { result: 'error' }),
    refusedLinks: await sumMetric(sidecar, 'trellis_link_refusals_total'),
    renewalFailures: await sumMetric(sidecar, 'trellis_sidecar_cert_renewal_failures_total'),
  };
}

const NO_TROUBLE = { streamErrors: 0, failedDials: 0, refusedLinks: 0, renewalFailures: 0 };

describe('certificate renewal under traffic', () => {
  let cp: ControlPlaneProcess;
  const appBytes = randomBytes(64 * 1024);
  const apps: TestApp[] = [];
  const sidecars: SidecarProcess[] = [];

  before(async () => {
    cp = await startControlPlane({ certTtl: `${CERT_TTL_MS}ms` });
  });

  after(async () => {
    await Promise.all(sidecars.map((s) => s.proc.stop()));
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('renews several times without closing links or streams; new links use the new certificate', async () => {
    apps.push(await startSinkSourceApp(appBytes));
    const sink = await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: apps[0]?.address });
    const client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['sink'] });
    sidecars.push(sink, client);
    const port = client.upstreams.get('sink')?.port ?? 0;
    const firstExpiry = { sink: await certExpiresAt(sink), client: await certExpiresAt(client) };

    const load = new TrafficLoad({ port, appBytes, longStreams: 4 });
    try {
      await eventually(
        async () => (await scrapeMetric(sink, 'trellis_sidecar_cert_renewals_total')) >= RENEWALS_PER_SIDECAR && (await scrapeMetric(client, 'trellis_sidecar_cert_renewals_total')) >= RENEWALS_PER_SIDECAR,
        `${RENEWALS_PER_SIDECAR} renewals on both sidecars`,
        60_000,
      );
      // Every first certificate has expired by now: a link made now fails unless both ends present renewed ones.
      await eventually(() => Date.now() > Math.max(firstExpiry.sink, firstExpiry.client) + 500, 'the first certificates to expire', 30_000);
      apps.push(await startSinkSourceApp(appBytes));
      const second = await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: apps[1]?.address });
      sidecars.push(second);
      await eventually(() => (apps[1]?.accepted ?? 0) > 0, 'a link dialled after renewals to carry streams', 30_000);
      const before = load.shortStreamsOk;
      await eventually(() => load.shortStreamsOk >= before + 20, 'more streams after the new link', 30_000);
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.equal(result.longStreamsOk, 4, 'every long stream outlived the renewals, byte-exact');
      assert.ok(result.shortStreamsOk > 50, `short streams: ${result.shortStreamsOk}`);
    }
    assert.ok((await certExpiresAt(sink)) > firstExpiry.sink + CERT_TTL_MS, 'the sink holds a renewed certificate');
    assert.ok((await certExpiresAt(client)) > firstExpiry.client + CERT_TTL_MS, 'the client holds a renewed certificate');
    for (const sidecar of sidecars) assert.deepEqual(await troubleOf(sidecar), NO_TROUBLE, `${sidecar.service} at ${sidecar.adminUrl}`);
  });

  it('counts renewals that cannot reach the control plane', async () => {
    const [sink] = sidecars;
    assert.ok(sink !== undefined);
    const failing = async (): Promise<boolean> => ((await (await fetch(`${sink.adminUrl}/status`)).json()) as { certRenewalFailing: boolean }).certRenewalFailing;
    assert.equal(await failing(), false);
    await cp.proc.stop('SIGKILL');
    await eventually(async () => (await scrapeMetric(sink, 'trellis_sidecar_cert_renewal_failures_total')) >= 1, 'a failed renewal to be counted', 30_000);
    assert.equal(await failing(), true, '/status says renewal is failing');
  });
});
