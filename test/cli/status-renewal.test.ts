// trellis status finds a sidecar whose certificate renewal fails, from the sidecar's report to
// the control plane (no --admin-url): a real control plane stopped while the sidecar's
// short-lived certificate comes up for renewal, then started again.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { MeshView } from '../../control-plane/dashboard/view-types.js';
import { connectAdmin } from '../../cli/admin-client.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

/** Renewal at half-life: 30 s after joining. */
const CERT_TTL = '60s';

interface Problem {
  severity: string;
  subject: string;
  message: string;
}

describe('trellis status and certificate renewal', () => {
  let cp: ControlPlaneProcess | undefined;
  let web: SidecarProcess | undefined;
  after(async () => {
    web?.proc.child.kill('SIGCONT');
    await web?.proc.stop();
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('exits 1 naming a sidecar that cannot renew its certificate', { timeout: 120_000 }, async () => {
    cp = await startControlPlane({ certTtl: CERT_TTL });
    const listen = new URL(cp.url).host;
    const sidecar = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp });
    web = sidecar;
    const { sidecarId } = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { sidecarId: string };

    // The control plane is away when the certificate comes up for renewal.
    await cp.proc.stop();
    await eventually(async () => (await scrapeMetric(sidecar, 'trellis_sidecar_cert_renewal_failures_total')) >= 1, 'a failed renewal', 60_000);
    const status = (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { certRenewalFailing: boolean };
    assert.equal(status.certRenewalFailing, true);

    cp = await startControlPlane({ dataDir: cp.dataDir, listen, certTtl: CERT_TTL });
    const admin = await connectAdmin(cp.url, cp.adminTokenFile);
    const reported = async (): Promise<boolean | null | undefined> => ((await admin.call('GET', '/v1/mesh')) as MeshView).sidecars.find((s) => s.sidecarId === sidecarId)?.certRenewalFailing;
    // The report sent on reconnecting still says failing; the next renewal, a second or two
    // later, succeeds. Freezing the sidecar keeps that report the latest while status runs.
    await eventually(async () => (await reported()) === true, 'the report of a failing renewal', 30_000);
    sidecar.proc.child.kill('SIGSTOP');
    const result = await runTrellis(['status', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    sidecar.proc.child.kill('SIGCONT');
    assert.equal(result.code, 1, result.stdout);
    const found = JSON.parse(result.stdout) as { ok: boolean; problems: Problem[] };
    assert.equal(found.ok, false);
    assert.deepEqual(found.problems.map(({ severity, subject }) => ({ severity, subject })), [{ severity: 'error', subject: `sidecar web/${sidecarId}` }]);
    assert.match(found.problems[0]?.message ?? '', /^cannot renew its certificate/);

    // Running again, it renews, and its next report says so.
    await eventually(async () => (await reported()) === false, 'the report of a renewed certificate', 30_000);
    const healthy = await runTrellis(['status', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(healthy.code, 0, healthy.stdout);
  });
});
