// Certificate renewal with `--workers 2`: the primary renews, every worker takes the new
// certificate, and links made after the first certificates expired still come up in both
// directions (into the workers' listeners and out of their dialers), under traffic.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { startSinkSourceApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { sumMetric, TrafficLoad } from '../support/traffic.js';

/** Short enough for renewals within the test, long enough for a loaded machine to renew in time. */
const CERT_TTL_MS = 6000;
const WORKERS = ['--workers', '2'];

async function certExpiresAt(sidecar: SidecarProcess): Promise<number> {
  const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { certExpiresAt: string };
  return Date.parse(status.certExpiresAt);
}

describe('certificate renewal with workers', { timeout: 180_000 }, () => {
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

  it('renews in the primary; the workers present the new certificate on links made after the old one expired', async () => {
    apps.push(await startSinkSourceApp(appBytes));
    const sink = await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: apps[0]?.address, extra: WORKERS });
    const client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['sink'], extra: WORKERS });
    sidecars.push(sink, client);
    const firstExpiry = Math.max(await certExpiresAt(sink), await certExpiresAt(client));
    const load = new TrafficLoad({ port: client.upstreams.get('sink')?.port ?? 0, appBytes, longStreams: 4 });
    try {
      await eventually(() => Date.now() > firstExpiry + 500, 'the first certificates to expire', 30_000);
      // Into the sink's workers: a caller started now dials links that need the sink's renewed certificate.
      const late = await startSidecar({ service: 'late', token: await createToken(cp, 'late'), cp, upstreams: ['sink'] });
      sidecars.push(late);
      const lateLoad = new TrafficLoad({ port: late.upstreams.get('sink')?.port ?? 0, appBytes, longStreams: 0, maxShortStreams: 20 });
      await eventually(() => lateLoad.shortStreamsOk >= 10 || lateLoad.failures.length > 0, 'streams from a caller started after the expiry', 30_000);
      assert.deepEqual((await lateLoad.stop()).failures, []);
      // Out of the client's workers: a second sink dialled now needs the client's renewed certificate.
      apps.push(await startSinkSourceApp(appBytes));
      sidecars.push(await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: apps[1]?.address }));
      await eventually(() => (apps[1]?.accepted ?? 0) > 0, 'a link dialled by a client worker after renewals to carry streams', 30_000);
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.equal(result.longStreamsOk, 4, 'every long stream outlived the renewals, byte-exact');
    }
    for (const sidecar of [sink, client]) {
      assert.ok((await scrapeMetric(sidecar, 'trellis_sidecar_cert_renewals_total')) >= 1, `${sidecar.service} renewed`);
      assert.equal(await sumMetric(sidecar, 'trellis_sidecar_stream_errors_total'), 0, `${sidecar.service}: no stream errors`);
      assert.equal(await sumMetric(sidecar, 'trellis_link_refusals_total'), 0, `${sidecar.service}: no refused links`);
    }
  });
});
