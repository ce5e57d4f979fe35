// CA rotation under load: a new root is trusted everywhere before it signs, every leaf is
// re-issued from it, and the old root is retired only once no live leaf depends on it (here a
// sidecar that died holding one, until that leaf expires); a control-plane crash mid-rotation
// resumes; tokens pinned to the old root still work after it; traffic flows throughout with
// no failed handshake, refused link or reset stream.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import type { CaStatus } from '../../proto/control.js';
import { caStatusSchema, ControlErrorCode } from '../../proto/control.js';
import { parseAdminToken } from '../../proto/tokens.js';
import type { TestApp } from '../support/apps.js';
import { startSinkSourceApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';
import { sumMetric, TrafficLoad } from '../support/traffic.js';

/** Long enough that renewals at half-life alone would not re-issue every leaf in the test's first phase. */
const CERT_TTL = '20s';

async function caStatus(cp: ControlPlaneProcess): Promise<CaStatus> {
  const result = await runTrellis(['ca', 'status', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
  assert.equal(result.code, 0, `ca status failed: ${result.stderr}`);
  return caStatusSchema.parse(JSON.parse(result.stdout));
}

async function sidecarIdOf(sidecar: SidecarProcess): Promise<string> {
  return ((await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId;
}

/** Everything that would show a failed handshake, a refused link or a reset stream. */
async function troubleOf(sidecar: SidecarProcess): Promise<Record<string, number>> {
  return {
    streamErrors: await sumMetric(sidecar, 'trellis_sidecar_stream_errors_total'),
    failedDials: await scrapeMetric(sidecar, 'trellis_sidecar_link_dial_seconds_count', { result: 'error' }),
    refusedLinks: await sumMetric(sidecar, 'trellis_link_refusals_total'),
  };
}

describe('CA rotation under load', () => {
  let cp: ControlPlaneProcess;
  const appBytes = randomBytes(64 * 1024);
  const apps: TestApp[] = [];
  const sidecars: SidecarProcess[] = [];

  before(async () => {
    cp = await startControlPlane({ certTtl: CERT_TTL });
  });

  after(async () => {
    await Promise.all(sidecars.map((s) => s.proc.stop()));
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('rotates the root with traffic flowing, and retires the old one only when nothing depends on it', async () => {
    apps.push(await startSinkSourceApp(appBytes));
    const sink = await startSidecar({ service: 'sink', token: await createToken(cp, 'sink'), cp, app: apps[0]?.address });
    const client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['sink'] });
    const dead = await startSidecar({ service: 'idle', token: await createToken(cp, 'idle'), cp });
    sidecars.push(sink, client);
    const deadId = await sidecarIdOf(dead);
    await dead.proc.stop('SIGKILL');

    const initial = await caStatus(cp);
    assert.equal(initial.phase, 'stable');
    assert.equal(initial.complete, true);
    assert.equal(initial.roots.length, 1);
    const oldRoot = initial.roots[0]?.fingerprint ?? '';
    assert.equal(parseAdminToken(await readFile(cp.adminTokenFile, 'utf8')).caFingerprint, oldRoot);
    const tokenBeforeRotation = await createToken(cp, 'sink');

    const port = client.upstreams.get('sink')?.port ?? 0;
    const load = new TrafficLoad({ port, appBytes, longStreams: 4 });
    try {
      const rotate = await runTrellis(['ca', 'rotate', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
      assert.equal(rotate.code, 0, rotate.stderr);
      const again = await runTrellis(['ca', 'rotate', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
      assert.equal(again.code, 1);
      assert.ok(again.stderr.includes(`[${ControlErrorCode.CA_ROTATION_IN_PROGRESS}]`), again.stderr);

      // The live sidecars renew early from the new root; the dead one's leaf holds the old root.
      let newRoot = '';
      await eventually(async () => {
        const status = await caStatus(cp);
        newRoot = status.roots.find((root) => root.role === 'signing')?.fingerprint ?? '';
        const others = status.leaves.filter((leaf) => leaf.id !== deadId);
        return status.phase === 'reissuing' && status.oldRootHolders === 1 && others.length >= 2 && others.every((leaf) => leaf.rootFingerprint === newRoot);
      }, 'the live sidecars to hold leaves of the new root', 30_000);
      assert.notEqual(newRoot, oldRoot);
      const reissuing = await caStatus(cp);
      assert.deepEqual(reissuing.roots.map((root) => [root.fingerprint, root.role]), [[newRoot, 'signing'], [oldRoot, 'retiring']]);
      assert.equal(reissuing.complete, false);
      const deadLeaf = reissuing.leaves.find((leaf) => leaf.id === deadId);
      assert.equal(deadLeaf?.rootFingerprint, oldRoot);

      // A crash mid-rotation: the phase is kept, traffic keeps flowing meanwhile.
      const listen = new URL(cp.url).host;
      await cp.proc.stop('SIGKILL');
      cp = await startControlPlane({ dataDir: cp.dataDir, listen, certTtl: CERT_TTL });
      const resumed = await caStatus(cp);
      assert.equal(resumed.phase, 'reissuing');
      // The crash may have lost the ledger's last second (renewals from the new root): that only
      // delays retirement, and the sidecars show their leaves again when they reconnect.
      await eventually(async () => (await caStatus(cp)).oldRootHolders === 1, 'the reconnected sidecars to show leaves of the new root', 30_000);

      await eventually(async () => (await caStatus(cp)).leaves.find((leaf) => leaf.id === deadId)?.renewalOverdue === true, 'the dead sidecar to show an overdue renewal', 30_000);
      let final: CaStatus | undefined;
      await eventually(async () => (final = await caStatus(cp)).complete, 'the rotation to complete', 60_000);
      assert.equal(final?.phase, 'stable');
      assert.deepEqual(final?.roots.map((root) => [root.fingerprint, root.role]), [[newRoot, 'signing']]);
      assert.equal(final?.oldRootHolders, 0);
      assert.ok((final?.rotation?.completedAt ?? 0) >= (deadLeaf?.expiresAt ?? Infinity), 'retired only after the last old leaf expired');

      // After the old root is gone: a token pinned to it still joins, and new links work.
      apps.push(await startSinkSourceApp(appBytes));
      const second = await startSidecar({ service: 'sink', token: tokenBeforeRotation, cp, app: apps[1]?.address });
      sidecars.push(second);
      await eventually(() => (apps[1]?.accepted ?? 0) > 0, 'a link made after the rotation to carry streams', 30_000);
      const before = load.shortStreamsOk;
      await eventually(() => load.shortStreamsOk >= before + 20, 'more streams after the rotation', 30_000);
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.equal(result.longStreamsOk, 4, 'every long stream outlived the rotation, byte-exact');
      assert.ok(result.shortStreamsOk > 50, `short streams: ${result.shortStreamsOk}`);
    }
    for (const sidecar of sidecars) {
      assert.deepEqual(await troubleOf(sidecar), { streamErrors: 0, failedDials: 0, refusedLinks: 0 }, `${sidecar.service} at ${sidecar.adminUrl}`);
    }
  });
});
