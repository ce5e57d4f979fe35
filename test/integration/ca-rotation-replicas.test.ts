// CA rotation with two control-plane replicas on one real etcd: the rotation started at one
// replica is seen by both (one phase, one ledger of live leaves), sidecars connected to either
// renew from the new root, a second rotation is refused at the other replica, and when the
// leader is killed mid-rotation the other replica finishes it. Traffic between sidecars of
// both replicas flows throughout, byte-exact, with no failed handshake or reset stream.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { CaStatus } from '../../proto/control.js';
import { caStatusSchema, ControlErrorCode } from '../../proto/control.js';
import type { TestApp } from '../support/apps.js';
import { startSinkSourceApp } from '../support/apps.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';
import { sumMetric, TrafficLoad } from '../support/traffic.js';

/** Long enough that the dead sidecar's leaf outlives the first part of the test. */
const CERT_TTL = '40s';
const LEASE_TTL = '2s';

async function caStatus(cp: ControlPlaneProcess): Promise<CaStatus> {
  const result = await runTrellis(['ca', 'status', '--json', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
  assert.equal(result.code, 0, `ca status failed: ${result.stderr}`);
  return caStatusSchema.parse(JSON.parse(result.stdout));
}

/** What two replicas must agree on: phase, roots, and who holds a leaf of which root. */
function agreed(status: CaStatus): unknown {
  return {
    phase: status.phase,
    complete: status.complete,
    roots: status.roots.map((root) => [root.fingerprint, root.role]),
    oldRootHolders: status.oldRootHolders,
    leaves: Object.fromEntries(status.leaves.map((leaf) => [leaf.id, leaf.rootFingerprint])),
  };
}

async function sidecarIdOf(sidecar: SidecarProcess): Promise<string> {
  return ((await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { sidecarId: string }).sidecarId;
}

async function troubleOf(sidecar: SidecarProcess): Promise<Record<string, number>> {
  return {
    streamErrors: await sumMetric(sidecar, 'trellis_sidecar_stream_errors_total'),
    failedDials: await scrapeMetric(sidecar, 'trellis_sidecar_link_dial_seconds_count', { result: 'error' }),
    refusedLinks: await sumMetric(sidecar, 'trellis_link_refusals_total'),
  };
}

describe('CA rotation across control-plane replicas on etcd', () => {
  let etcd: TestEtcd;
  let keyDir: string;
  let etcdArgs: string[];
  let cpA: ControlPlaneProcess;
  let cpB: ControlPlaneProcess;
  const appBytes = randomBytes(64 * 1024);
  const apps: TestApp[] = [];
  const sidecars: SidecarProcess[] = [];

  /** The replica id of the leader, from etcd. */
  async function leaderId(): Promise<string | undefined> {
    const raw = new Etcd3({ hosts: etcd.url });
    try {
      const value = await raw.get('/trellis/election/leader').string();
      return value === null ? undefined : (JSON.parse(value) as { replicaId: string }).replicaId;
    } finally {
      raw.close();
    }
  }

  before(async () => {
    etcd = await startEtcd();
    keyDir = await mkdtemp(join(tmpdir(), 'trellis-key-'));
    const keyFile = join(keyDir, 'etcd.key');
    await writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    etcdArgs = ['--store', 'etcd', '--etcd', etcd.url, '--etcd-encryption-key-file', keyFile];
    cpA = await startControlPlane({ leaseTtl: LEASE_TTL, certTtl: CERT_TTL, extra: etcdArgs });
    // A leads before B starts: killing A later takes the leader down.
    await eventually(async () => (await leaderId()) === `${hostname()}:${cpA.proc.child.pid}`, 'replica A to lead');
    cpB = await startControlPlane({ leaseTtl: LEASE_TTL, certTtl: CERT_TTL, extra: etcdArgs });
  });

  after(async () => {
    await Promise.all(sidecars.map((s) => s.proc.stop()));
    await Promise.all([cpA?.proc.stop(), cpB?.proc.stop()]);
    await Promise.all(apps.map((app) => app.close()));
    await etcd?.stop();
    await removeDirs(cpA?.dataDir ?? '', cpB?.dataDir ?? '', keyDir ?? '');
  });

  it('rotates from one replica, renews sidecars of both, and finishes at the other when the leader dies', async () => {
    apps.push(await startSinkSourceApp(appBytes));
    // The sink is served by A, the client by B; each may fail over to the other.
    const sink = await startSidecar({ service: 'sink', token: await createToken(cpA, 'sink'), cp: cpA, app: apps[0]?.address, extra: ['--control-plane', cpB.url] });
    const client = await startSidecar({ service: 'client', token: await createToken(cpB, 'client'), cp: cpB, upstreams: ['sink'], extra: ['--control-plane', cpA.url] });
    sidecars.push(sink, client);
    // A sidecar of B that died holding a leaf of the old root: only B's ledger knows it.
    const dead = await startSidecar({ service: 'idle', token: await createToken(cpB, 'idle'), cp: cpB });
    const deadId = await sidecarIdOf(dead);
    await dead.proc.stop('SIGKILL');
    const liveIds = [await sidecarIdOf(sink), await sidecarIdOf(client)];

    const initial = await caStatus(cpB);
    assert.equal(initial.phase, 'stable');
    const oldRoot = initial.roots[0]?.fingerprint ?? '';
    await eventually(async () => (await caStatus(cpA)).leaves.some((leaf) => leaf.id === deadId), 'A to see the leaf B issued to the dead sidecar', 30_000);

    const port = client.upstreams.get('sink')?.port ?? 0;
    const load = new TrafficLoad({ port, appBytes, longStreams: 4 });
    try {
      const rotate = await runTrellis(['ca', 'rotate', '--control-plane', cpA.url, '--admin-token-file', cpA.adminTokenFile]);
      assert.equal(rotate.code, 0, rotate.stderr);
      // B holds the same phase: a second rotation is refused there too.
      await eventually(async () => (await caStatus(cpB)).phase !== 'stable', 'B to see the rotation', 30_000);
      const again = await runTrellis(['ca', 'rotate', '--control-plane', cpB.url, '--admin-token-file', cpB.adminTokenFile]);
      assert.equal(again.code, 1);
      assert.ok(again.stderr.includes(`[${ControlErrorCode.CA_ROTATION_IN_PROGRESS}]`), again.stderr);

      // Sidecars of both replicas renew from the new root; the dead one's leaf holds the old root.
      let newRoot = '';
      await eventually(async () => {
        const status = await caStatus(cpB);
        newRoot = status.roots.find((root) => root.role === 'signing')?.fingerprint ?? '';
        const live = status.leaves.filter((leaf) => liveIds.includes(leaf.id));
        return status.phase === 'reissuing' && status.oldRootHolders === 1 && live.length === 2 && live.every((leaf) => leaf.rootFingerprint === newRoot);
      }, 'the sidecars of both replicas to hold leaves of the new root', 60_000);
      assert.notEqual(newRoot, oldRoot);
      // Both replicas show the same phase, roots and counts.
      await eventually(async () => isDeepEqual(agreed(await caStatus(cpA)), agreed(await caStatus(cpB))), 'A and B to agree on the CA status', 30_000);
      const onB = await caStatus(cpB);
      assert.deepEqual(onB.roots.map((root) => [root.fingerprint, root.role]), [[newRoot, 'signing'], [oldRoot, 'retiring']]);
      const deadLeaf = onB.leaves.find((leaf) => leaf.id === deadId);
      assert.equal(deadLeaf?.rootFingerprint, oldRoot);
      assert.ok((deadLeaf?.expiresAt ?? 0) > Date.now() + 2000, 'the rotation is still waiting on the dead leaf when the leader dies');

      // The leader dies mid-rotation: B takes over and retires the old root once the dead leaf expires.
      await cpA.proc.stop('SIGKILL');
      await eventually(async () => (await leaderId()) === `${hostname()}:${cpB.proc.child.pid}`, 'B to lead', 30_000);
      let final: CaStatus | undefined;
      await eventually(async () => (final = await caStatus(cpB)).complete, 'B to complete the rotation', 90_000);
      assert.equal(final?.phase, 'stable');
      assert.deepEqual(final?.roots.map((root) => [root.fingerprint, root.role]), [[newRoot, 'signing']]);
      assert.equal(final?.oldRootHolders, 0);
      assert.ok((final?.rotation?.completedAt ?? 0) >= (deadLeaf?.expiresAt ?? Infinity), 'retired only after the last old leaf expired');
      const before = load.shortStreamsOk;
      await eventually(() => load.shortStreamsOk >= before + 20, 'more streams after the rotation', 30_000);
    } finally {
      const result = await load.stop();
      assert.deepEqual(result.failures, []);
      assert.equal(result.longStreamsOk, 4, 'every long stream outlived the rotation and the kill, byte-exact');
      assert.ok(result.shortStreamsOk > 50, `short streams: ${result.shortStreamsOk}`);
    }
    for (const sidecar of sidecars) {
      assert.deepEqual(await troubleOf(sidecar), { streamErrors: 0, failedDials: 0, refusedLinks: 0 }, `${sidecar.service} at ${sidecar.adminUrl}`);
    }

    // A comes back and serves the CA the rotation left.
    cpA = await startControlPlane({ dataDir: cpA.dataDir, leaseTtl: LEASE_TTL, certTtl: CERT_TTL, extra: etcdArgs });
    assert.deepEqual(agreed(await caStatus(cpA)), agreed(await caStatus(cpB)));
  });
});

function isDeepEqual(a: unknown, b: unknown): boolean {
  try {
    assert.deepEqual(a, b);
    return true;
  } catch {
    return false;
  }
}
