import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import type { JoinResponse } from '../../proto/control.js';
import { MAX_RECONNECT_DELAY_MS } from '../../proto/control.js';
import {
  ChannelClient,
  adminTokenOf,
  call,
  caPemOf,
  isCertificate,
  isDelta,
  isError,
  isSnapshot,
  joinAs,
  makeCsr,
  startTestControlPlane,
  tempDir,
  withTestControlPlane,
} from './helpers.js';

type Joined = JoinResponse & { keyPem: string };

async function connectRegistered(cp: ControlPlane, caPem: string, joined: Joined, address: string): Promise<ChannelClient> {
  const client = new ChannelClient(cp, caPem, joined);
  await client.opened;
  client.send({ type: 'register', address, zone: 'z1', weight: 10 });
  return client;
}

describe('sidecar channel', () => {
  it('sends a snapshot after register, then coalesced deltas; renews certificates', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      const db = await joinAs(cp, dir.path, 'db');
      const client = await connectRegistered(cp, caPem, db, '127.0.0.1:7401');
      const snapshot = await client.waitFor(isSnapshot);
      const ownKey = `endpoint/db/${db.sidecarId}`;
      assert.deepEqual(new Map(snapshot.entries).get(ownKey), { sidecarId: db.sidecarId, service: 'db', address: '127.0.0.1:7401', zone: 'z1', weight: 10, healthy: true });
      assert.deepEqual(new Map(snapshot.entries).get('policy/default'), { action: 'allow' });
      client.send({ type: 'ack', version: snapshot.version });

      const services = await call(cp, dir.path, 'GET', '/v1/services', { token });
      assert.deepEqual(services.json, { services: { db: [{ sidecarId: db.sidecarId, address: '127.0.0.1:7401', zone: 'z1', weight: 10, healthy: true, connected: true }] } });

      await call(cp, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'deny' }, token });
      await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'allow' }, token });
      const delta = await client.waitFor(isDelta);
      assert.equal(delta.baseVersion, snapshot.version);
      const changes = new Map(delta.changes);
      assert.deepEqual(changes.get('policy/default'), { action: 'deny' });
      // Both changes may land in one delta or two; either way the second is delivered.
      if (!changes.has('policy/rule/web/db')) await client.waitFor((m): m is typeof delta => isDelta(m) && m.changes.some(([k]) => k === 'policy/rule/web/db'));

      client.send({ type: 'health', healthy: false });
      const health = await client.waitFor((m): m is typeof delta => isDelta(m) && m.changes.some(([k]) => k === ownKey));
      assert.equal((new Map(health.changes).get(ownKey) as { healthy: boolean }).healthy, false);

      client.send({ type: 'renew', csrPem: makeCsr().csrPem });
      const renewed = await client.waitFor(isCertificate);
      const cert = new X509Certificate(renewed.certPem);
      assert.equal(cert.subjectAltName, 'URI:spiffe://trellis.local/svc/db');
      assert.match(cert.subject, new RegExp(`CN=${db.sidecarId}`));
      assert.ok(cert.verify(new X509Certificate(caPem).publicKey));
      client.send({ type: 'renew', csrPem: makeCsr(1024).csrPem });
      assert.equal((await client.waitFor(isError)).code, 'TRELLIS_ERR_BAD_CSR');

      const metrics = await cp.metricsRegistry.metrics();
      assert.match(metrics, /trellis_cp_sidecars_connected 1/);
      assert.match(metrics, /trellis_cp_endpoints\{service="db"\} 1/);
      assert.match(metrics, /trellis_cp_certs_issued_total\{reason="renew"\} 1/);
      assert.match(metrics, /trellis_cp_sidecars_lagging 1/);
      assert.match(metrics, /trellis_cp_push_messages_total\{type="snapshot"\} 1/);
      await client.close();
    });
  });

  it('refuses clients without a certificate or with one from another CA', async () => {
    const dir = await tempDir();
    const otherDir = await tempDir();
    const cp = await startTestControlPlane(dir.path);
    const other = await startTestControlPlane(otherDir.path);
    try {
      const caPem = await caPemOf(dir.path);
      await assert.rejects(new ChannelClient(cp, caPem).opened, /HTTP 401/);
      const foreign = await joinAs(other, otherDir.path, 'db');
      await assert.rejects(new ChannelClient(cp, caPem, foreign).opened, /HTTP 401/);
    } finally {
      await cp.close();
      await other.close();
      await dir.remove();
      await otherDir.remove();
    }
  });

  it('answers an invalid message with an error and closes with 1008', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const garbage = new ChannelClient(cp, caPem, db);
      await garbage.opened;
      garbage.ws.send(Buffer.from([0x92, 0x01]));
      assert.equal((await garbage.waitFor(isError)).code, 'TRELLIS_ERR_INVALID');
      assert.equal(await garbage.closed, 1008);

      const early = new ChannelClient(cp, caPem, db);
      await early.opened;
      early.send({ type: 'ack', version: 1 });
      assert.equal((await early.waitFor(isError)).code, 'TRELLIS_ERR_NOT_REGISTERED');
      assert.equal(await early.closed, 1008);

      const text = new ChannelClient(cp, caPem, db);
      await text.opened;
      text.ws.send('{"type":"register"}');
      assert.equal((await text.waitFor(isError)).code, 'TRELLIS_ERR_INVALID');
      assert.equal(await text.closed, 1008);
    });
  });

  it('takes the health a register reports: an unhealthy sidecar is never pushed as healthy', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const client = new ChannelClient(cp, caPem, db);
      await client.opened;
      client.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 10, healthy: false });
      const snapshot = await client.waitFor(isSnapshot);
      const key = `endpoint/db/${db.sidecarId}`;
      assert.equal((new Map(snapshot.entries).get(key) as { healthy: boolean } | undefined)?.healthy, false);
      const services = await call(cp, dir.path, 'GET', '/v1/services', { token: await adminTokenOf(cp) });
      assert.equal((services.json as { services: Record<string, Array<{ healthy: boolean }>> }).services['db']?.[0]?.healthy, false);
      assert.ok(!client.messages.some((m) => isDelta(m) && m.changes.some(([k, v]) => k === key && (v as { healthy?: boolean } | null)?.healthy === true)));
      await client.close();
    });
  });

  it('removes an endpoint when its lease runs out after the session closes', async () => {
    await withTestControlPlane({ leaseTtlMs: 300 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const web = await joinAs(cp, dir.path, 'web');
      const watcher = await connectRegistered(cp, caPem, web, '127.0.0.1:7402');
      await watcher.waitFor(isSnapshot);
      const leaving = await connectRegistered(cp, caPem, db, '127.0.0.1:7401');
      const key = `endpoint/db/${db.sidecarId}`;
      const added = await watcher.waitFor((m): m is Extract<typeof m, { type: 'delta' }> => isDelta(m) && m.changes.some(([k, v]) => k === key && v !== null));
      await leaving.close();
      const closedAt = Date.now();
      const removed = await watcher.waitFor((m): m is typeof added => isDelta(m) && m.changes.some(([k, v]) => k === key && v === null));
      assert.ok(removed.version > added.version);
      assert.ok(Date.now() - closedAt >= 250, 'removed before the lease ran out');
      await watcher.close();
    });
  });

  it('after a restart, endpoints of the previous run go a lease time plus the sidecars\' longest back-off after it serves, unless their sidecar returns', async () => {
    const dir = await tempDir();
    // Long enough that a loaded machine restarts, joins and subscribes well within it.
    const leaseTtlMs = 2500;
    const first = await startTestControlPlane(dir.path, { leaseTtlMs });
    const caPem = await caPemOf(dir.path);
    const db = await joinAs(first, dir.path, 'db');
    const web = await joinAs(first, dir.path, 'web');
    const key = `endpoint/db/${db.sidecarId}`;
    const client = await connectRegistered(first, caPem, db, '127.0.0.1:7401');
    await client.waitFor(isSnapshot);
    await first.close();
    await client.closed;

    const second = await startTestControlPlane(dir.path, { leaseTtlMs });
    const servingAt = performance.now();
    try {
      const watcher = await connectRegistered(second, caPem, web, '127.0.0.1:7402');
      const snapshot = await watcher.waitFor(isSnapshot);
      assert.ok(new Map(snapshot.entries).has(key), 'the stored endpoint survives the restart');
      const holdMs = leaseTtlMs + MAX_RECONNECT_DELAY_MS;
      await watcher.waitFor((m): m is Extract<typeof m, { type: 'delta' }> => isDelta(m) && m.changes.some(([k, v]) => k === key && v === null), 0, holdMs * 3);
      // Timers may fire a little early against performance.now(); never by a whole back-off.
      assert.ok(performance.now() - servingAt >= holdMs - 50, 'the sidecar had its back-off and a lease time to come back');
      await watcher.close();
    } finally {
      await second.close();
      await dir.remove();
    }
  });

  it('lets a sidecar re-register from a new session, closing the older one (4000)', async () => {
    await withTestControlPlane({ leaseTtlMs: 200 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const older = await connectRegistered(cp, caPem, db, '127.0.0.1:7401');
      await older.waitFor(isSnapshot);
      const newer = await connectRegistered(cp, caPem, db, '127.0.0.1:7409');
      const snapshot = await newer.waitFor(isSnapshot);
      assert.equal((new Map(snapshot.entries).get(`endpoint/db/${db.sidecarId}`) as { address: string }).address, '127.0.0.1:7409');
      assert.equal(await older.closed, 4000);
      const services = await call(cp, dir.path, 'GET', '/v1/services', { token: await adminTokenOf(cp) });
      const endpoints = (services.json as { services: Record<string, Array<{ address: string; connected: boolean }>> }).services.db;
      assert.deepEqual(endpoints?.map((e) => [e.address, e.connected]), [['127.0.0.1:7409', true]]);
      await newer.close();
    });
  });

  it('terminates a session that stops answering pings', async () => {
    await withTestControlPlane({ pingIntervalMs: 100, leaseTtlMs: 50 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const web = await joinAs(cp, dir.path, 'web');
      const watcher = await connectRegistered(cp, caPem, web, '127.0.0.1:7402');
      await watcher.waitFor(isSnapshot);
      const silent = await connectRegistered(cp, caPem, db, '127.0.0.1:7401');
      await silent.waitFor(isSnapshot);
      // Stop reading: pings go unanswered.
      silent.ws.pause();
      const key = `endpoint/db/${db.sidecarId}`;
      await watcher.waitFor((m): m is Extract<typeof m, { type: 'delta' }> => isDelta(m) && m.changes.some(([k, v]) => k === key && v === null));
      silent.ws.terminate();
      await watcher.close();
    });
  });
});
