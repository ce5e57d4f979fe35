// Scoped push on the sidecar channel (channel version 2), through real WebSocket + mTLS
// sessions: scope, subscriptions and their limit, nack, resume, and sessions that fall behind.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import type { ControlPlaneMessage, JoinResponse, SidecarMessage } from '../../proto/control.js';
import { CHANNEL_VERSION, MAX_SERVICES_PER_SUBSCRIBE, MAX_SUBSCRIPTIONS } from '../../proto/control.js';
import { ChannelClient, adminTokenOf, call, caPemOf, isDelta, isError, isSnapshot, joinAs, withTestControlPlane } from './helpers.js';

type Joined = JoinResponse & { keyPem: string };
type Delta = Extract<ControlPlaneMessage, { type: 'delta' }>;
type Snapshot = Extract<ControlPlaneMessage, { type: 'snapshot' }>;

async function connect(cp: ControlPlane, caPem: string, joined: Joined, port: number, extra: Partial<Extract<SidecarMessage, { type: 'register' }>> = {}): Promise<ChannelClient> {
  const client = new ChannelClient(cp, caPem, joined);
  await client.opened;
  client.send({ type: 'register', address: `127.0.0.1:${port}`, zone: 'z1', weight: 1, ...extra });
  return client;
}

const touches = (key: string) => (m: ControlPlaneMessage): m is Delta => isDelta(m) && m.changes.some(([k]) => k === key);
const keysOf = (messages: readonly ControlPlaneMessage[]): Set<string> =>
  new Set(messages.flatMap((m) => (m.type === 'snapshot' ? m.entries.map(([k]) => k) : m.type === 'delta' ? m.changes.map(([k]) => k) : [])));

/** Asserts that every config message follows the one before it (each delta's base is the version before). */
function assertChained(messages: readonly ControlPlaneMessage[]): void {
  let version: number | undefined;
  for (const m of messages) {
    if (m.type === 'snapshot') version = m.version;
    else if (m.type === 'delta') {
      assert.equal(m.baseVersion, version, `delta ${m.version} follows ${version}`);
      assert.ok(m.version >= m.baseVersion);
      version = m.version;
    }
  }
}

describe('scoped push (channel 2)', () => {
  it('a sidecar gets its upstreams\' endpoints, its own policies and mesh-wide entries; a channel-1 session gets everything', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      const [db, cache, web, legacy] = [await joinAs(cp, dir.path, 'db'), await joinAs(cp, dir.path, 'cache'), await joinAs(cp, dir.path, 'web'), await joinAs(cp, dir.path, 'legacy')];
      const dbSession = await connect(cp, caPem, db, 7501, { channel: CHANNEL_VERSION });
      const cacheSession = await connect(cp, caPem, cache, 7502, { channel: CHANNEL_VERSION });
      await dbSession.waitFor(isSnapshot);
      await cacheSession.waitFor(isSnapshot);
      await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'allow' }, token });
      await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'db', to: 'web', action: 'deny' }, token });

      const webSession = await connect(cp, caPem, web, 7503, { channel: CHANNEL_VERSION, services: ['db'] });
      const legacySession = await connect(cp, caPem, legacy, 7504);
      const snapshot = await webSession.waitFor(isSnapshot);
      assert.equal(snapshot.channel, CHANNEL_VERSION);
      assert.deepEqual(snapshot.subscribed, ['db']);
      const keys = new Set(snapshot.entries.map(([k]) => k));
      assert.ok(keys.has(`endpoint/db/${db.sidecarId}`));
      assert.ok(!keys.has(`endpoint/cache/${cache.sidecarId}`), 'no endpoint of a service it does not route to');
      assert.ok(!keys.has(`endpoint/web/${web.sidecarId}`), 'not even its own endpoint');
      assert.ok(keys.has('policy/rule/db/web'), 'the rules protecting its own service');
      assert.ok(!keys.has('policy/rule/web/db'), 'not the rules other sidecars enforce');
      assert.ok(keys.has('policy/default'));
      const legacySnapshot = await legacySession.waitFor(isSnapshot);
      assert.equal(legacySnapshot.channel, undefined, 'a channel-1 session is not told of channel 2');
      const legacyKeys = new Set(legacySnapshot.entries.map(([k]) => k));
      for (const key of [`endpoint/db/${db.sidecarId}`, `endpoint/cache/${cache.sidecarId}`, 'policy/rule/web/db', 'policy/rule/db/web']) assert.ok(legacyKeys.has(key), key);

      // A health change of cache goes to the channel-1 session only; one of db to both.
      const cacheKey = `endpoint/cache/${cache.sidecarId}`;
      const dbKey = `endpoint/db/${db.sidecarId}`;
      cacheSession.send({ type: 'health', healthy: false });
      await legacySession.waitFor(touches(cacheKey));
      const seen = webSession.messages.length;
      dbSession.send({ type: 'health', healthy: false });
      const dbDelta = await webSession.waitFor(touches(dbKey), seen);
      assert.equal(dbDelta.baseVersion, snapshot.version);
      assert.ok(!keysOf(webSession.messages).has(cacheKey), 'the cache change never reached web');
      await legacySession.waitFor(touches(dbKey));
      // A mesh-wide change reaches every session.
      await call(cp, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'deny' }, token });
      for (const session of [webSession, legacySession, dbSession, cacheSession]) await session.waitFor(touches('policy/default'));
      assertChained(webSession.messages);
      assertChained(legacySession.messages);
      await Promise.all([dbSession, cacheSession, webSession, legacySession].map((s) => s.close()));
    });
  });

  it('subscribe brings a service\'s endpoints in full, unsubscribe stops them; past the limit a subscribe is refused', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const [db, cache, web] = [await joinAs(cp, dir.path, 'db'), await joinAs(cp, dir.path, 'cache'), await joinAs(cp, dir.path, 'web')];
      const dbSession = await connect(cp, caPem, db, 7511, { channel: CHANNEL_VERSION });
      const cacheSession = await connect(cp, caPem, cache, 7512, { channel: CHANNEL_VERSION });
      await dbSession.waitFor(isSnapshot);
      await cacheSession.waitFor(isSnapshot);
      const webSession = await connect(cp, caPem, web, 7513, { channel: CHANNEL_VERSION, services: ['db'] });
      await webSession.waitFor(isSnapshot);
      const observer = await connect(cp, caPem, await joinAs(cp, dir.path, 'observer'), 7514);
      await observer.waitFor(isSnapshot);
      const cacheKey = `endpoint/cache/${cache.sidecarId}`;
      const dbKey = `endpoint/db/${db.sidecarId}`;

      webSession.send({ type: 'subscribe', services: ['cache'] });
      const subscribed = await webSession.waitFor((m): m is Delta => isDelta(m) && (m.subscribed ?? []).includes('cache'));
      assert.deepEqual(new Map(subscribed.changes).get(cacheKey), { sidecarId: cache.sidecarId, service: 'cache', address: '127.0.0.1:7512', zone: 'z1', weight: 1, healthy: true });
      cacheSession.send({ type: 'health', healthy: false });
      // Its own change, not the subscription's delta that also touches the key.
      await webSession.waitFor((m): m is Delta => isDelta(m) && m.changes.some(([k, v]) => k === cacheKey && !(v as { healthy: boolean }).healthy));

      webSession.send({ type: 'unsubscribe', services: ['cache'] });
      // Messages of one session are handled in order: once the subscription after it is
      // answered, the unsubscribe has been handled.
      webSession.send({ type: 'subscribe', services: ['marker'] });
      await webSession.waitFor((m): m is Delta => isDelta(m) && (m.subscribed ?? []).includes('marker'));
      const seen = webSession.messages.length;
      cacheSession.send({ type: 'health', healthy: true });
      // The observer gets everything: once it has cache's change, that change's flush is over, and
      // anything web gets later was sent after whatever that flush sent web.
      await observer.waitFor((m): m is Delta => isDelta(m) && m.changes.some(([k, v]) => k === cacheKey && (v as { healthy: boolean }).healthy));
      dbSession.send({ type: 'health', healthy: false });
      await webSession.waitFor(touches(dbKey), seen);
      assert.ok(!keysOf(webSession.messages.slice(seen)).has(cacheKey), 'no cache change after unsubscribe');
      assertChained(webSession.messages);

      // Up to the limit, in batches; one more is refused and the channel stays open.
      const names = Array.from({ length: MAX_SUBSCRIPTIONS }, (_, i) => `svc-${i}`);
      for (let i = 0; i < names.length - 1; i += MAX_SERVICES_PER_SUBSCRIBE) webSession.send({ type: 'subscribe', services: names.slice(i, i + MAX_SERVICES_PER_SUBSCRIBE) });
      webSession.send({ type: 'subscribe', services: ['one-too-many', 'two-too-many'] });
      assert.equal((await webSession.waitFor(isError)).code, 'TRELLIS_ERR_SUBSCRIPTION_LIMIT');
      const before = webSession.messages.length;
      dbSession.send({ type: 'health', healthy: true });
      await webSession.waitFor(touches(dbKey), before);
      assert.equal(webSession.closeCode, undefined);
      await Promise.all([dbSession, cacheSession, webSession, observer].map((s) => s.close()));
    });
  });

  it('answers a nack with a snapshot', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const web = await joinAs(cp, dir.path, 'web');
      const session = await connect(cp, caPem, web, 7521, { channel: CHANNEL_VERSION, services: ['db'] });
      const first = await session.waitFor(isSnapshot);
      session.send({ type: 'nack', version: first.version + 7, haveVersion: first.version - 1 });
      const second = await session.waitFor((m): m is Snapshot => isSnapshot(m) && m !== first);
      assert.equal(second.version, first.version);
      assert.deepEqual(second.subscribed, ['db']);
      const metrics = await cp.metricsRegistry.metrics();
      assert.match(metrics, /trellis_cp_push_events_total\{event="nack"\} 1/);
      await session.close();
    });
  });

  it('a reconnecting sidecar that says its version gets a delta from it; from a version the log does not reach, a snapshot', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      const [db, cache, web] = [await joinAs(cp, dir.path, 'db'), await joinAs(cp, dir.path, 'cache'), await joinAs(cp, dir.path, 'web')];
      const dbSession = await connect(cp, caPem, db, 7531, { channel: CHANNEL_VERSION });
      const cacheSession = await connect(cp, caPem, cache, 7532, { channel: CHANNEL_VERSION });
      await dbSession.waitFor(isSnapshot);
      await cacheSession.waitFor(isSnapshot);
      let webSession = await connect(cp, caPem, web, 7533, { channel: CHANNEL_VERSION, services: ['db'] });
      const held = await webSession.waitFor(isSnapshot);
      await webSession.close();

      const dbKey = `endpoint/db/${db.sidecarId}`;
      const cacheKey = `endpoint/cache/${cache.sidecarId}`;
      dbSession.send({ type: 'health', healthy: false });
      cacheSession.send({ type: 'health', healthy: false });
      await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'db', to: 'web', action: 'deny' }, token });
      await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'deny' }, token });

      // It held db in full at `held.version`, and now also wants cache.
      webSession = await connect(cp, caPem, web, 7533, { channel: CHANNEL_VERSION, services: ['db', 'cache'], resume: { version: held.version, services: ['db'] } });
      const resumed = await webSession.waitFor(isDelta);
      assert.equal(webSession.messages.filter(isSnapshot).length, 0);
      assert.equal(resumed.baseVersion, held.version);
      assert.equal(resumed.channel, CHANNEL_VERSION);
      assert.deepEqual(resumed.subscribed, ['cache']);
      const changes = new Map(resumed.changes);
      assert.equal((changes.get(dbKey) as { healthy: boolean }).healthy, false);
      assert.equal((changes.get(cacheKey) as { healthy: boolean }).healthy, false);
      assert.deepEqual(changes.get('policy/rule/db/web'), { from: 'db', to: 'web', action: 'deny' });
      assert.ok(!changes.has('policy/rule/web/db'));
      await webSession.close();

      // A version ahead of this replica's (or older than its log) cannot be vouched for.
      webSession = await connect(cp, caPem, web, 7533, { channel: CHANNEL_VERSION, services: ['db'], resume: { version: resumed.version + 1000, services: ['db'] } });
      const snapshot = await webSession.waitFor(isSnapshot);
      assert.equal(snapshot.version, resumed.version);
      assert.equal(webSession.messages.filter(isDelta).length, 0);
      const metrics = await cp.metricsRegistry.metrics();
      assert.match(metrics, /trellis_cp_push_events_total\{event="resume-delta"\} 1/);
      assert.match(metrics, /trellis_cp_push_events_total\{event="resume-snapshot"\} 1/);
      await Promise.all([dbSession, cacheSession, webSession].map((s) => s.close()));
    });
  });

  it('a stalled session gets nothing more once behind, then one coalesced delta with the latest state', async () => {
    // A small window so that a handful of unacked deltas puts the session behind.
    await withTestControlPlane({ pushWindowBytes: 600 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      const web = await joinAs(cp, dir.path, 'web');
      const stalled = await connect(cp, caPem, web, 7541, { channel: CHANNEL_VERSION });
      const snapshot = await stalled.waitFor(isSnapshot);
      stalled.send({ type: 'ack', version: snapshot.version });
      await new Promise((resolve) => setTimeout(resolve, 50));
      // It stops reading (and so acking) while the rules protecting it change 40 times.
      stalled.ws.pause();
      const rounds = 40;
      let lastVersion = 0;
      for (let i = 0; i < rounds; i++) {
        const answer = await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: `caller-${i}`, to: 'web', action: i % 2 === 0 ? 'deny' : 'allow' }, token });
        lastVersion = (answer.json as { version: number }).version;
        // Apart from one another, so that each would be a delta of its own.
        await new Promise((resolve) => setTimeout(resolve, 30));
      }
      stalled.ws.resume();
      // What was sent before it fell behind arrives; acking it lets the backlog go as one delta.
      const deltasBefore = await waitForQuiet(stalled);
      assert.ok(deltasBefore.length < rounds / 2, `only the deltas sent before it fell behind: ${deltasBefore.length}`);
      const last = deltasBefore.at(-1)!;
      stalled.send({ type: 'ack', version: last.version });
      const caughtUp = await stalled.waitFor((m): m is Delta => isDelta(m) && m.version === lastVersion);
      assert.equal(caughtUp.baseVersion, last.version);
      assert.ok(caughtUp.changes.length > 1, 'the backlog came as one delta');
      const all = stalled.messages.filter(isDelta);
      assert.equal(all.length, deltasBefore.length + 1);
      assertChained(stalled.messages);
      const state = new Map<string, unknown>(snapshot.entries);
      for (const delta of all) for (const [key, value] of delta.changes) state.set(key, value);
      for (let i = 0; i < rounds; i++) assert.deepEqual(state.get(`policy/rule/caller-${i}/web`), { from: `caller-${i}`, to: 'web', action: i % 2 === 0 ? 'deny' : 'allow' });
      const metrics = await cp.metricsRegistry.metrics();
      assert.match(metrics, /trellis_cp_push_events_total\{event="coalesced"\} [1-9]/);
      await stalled.close();
    });
  });
});

/** The deltas received once no message has arrived for 300 ms. */
async function waitForQuiet(client: ChannelClient): Promise<Delta[]> {
  let count = -1;
  while (client.messages.length !== count) {
    count = client.messages.length;
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return client.messages.filter(isDelta);
}
