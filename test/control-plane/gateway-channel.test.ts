import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import type { GatewaysView } from '../../control-plane/gateway-registry.js';
import type { ControlPlane } from '../../control-plane/index.js';
import type { ConfigValue, DeltaMessage, JoinGatewayResponse, JoinResponse } from '../../proto/control.js';
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
  joinAsGateway,
  makeCsr,
  withTestControlPlane,
} from './helpers.js';

type Credentials = (JoinResponse | JoinGatewayResponse) & { keyPem: string };

async function connect(cp: ControlPlane, caPem: string, joined: Credentials): Promise<ChannelClient> {
  const client = new ChannelClient(cp, caPem, joined);
  await client.opened;
  return client;
}

/** A sidecar session of `service`, registered and holding its first snapshot. */
async function sidecarWatcher(cp: ControlPlane, dataDir: string, caPem: string, service = 'web'): Promise<ChannelClient> {
  const client = await connect(cp, caPem, await joinAs(cp, dataDir, service));
  client.send({ type: 'register', address: '127.0.0.1:7402', zone: 'a', weight: 1 });
  await client.waitFor(isSnapshot);
  return client;
}

/** Waits for a delta that sets (`value` given: to that value) or, with `null`, deletes `key`. */
function waitForChange(client: ChannelClient, key: string, value: ConfigValue | null | 'any' = 'any', fromIndex = 0): Promise<DeltaMessage> {
  return client.waitFor(
    (m): m is DeltaMessage =>
      isDelta(m) &&
      m.changes.some(([k, v]) => k === key && (value === 'any' ? v !== null : value === null ? v === null : JSON.stringify(v) === JSON.stringify(value))),
    fromIndex,
  );
}

async function gatewaysView(cp: ControlPlane, dataDir: string): Promise<GatewaysView> {
  const answer = await call(cp, dataDir, 'GET', '/v1/gateways', { token: await adminTokenOf(cp) });
  assert.equal(answer.status, 200, answer.text);
  return answer.json as GatewaysView;
}

describe('gateways on the sidecar channel', () => {
  it('register-gateway makes a gateway entry that sidecars get in their delta and snapshot', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const watcher = await sidecarWatcher(cp, dir.path, caPem);
      const ga = await joinAsGateway(cp, dir.path, 'a', 'ga');
      const gateway = await connect(cp, caPem, ga);
      const addresses = ['tls://127.0.0.1:7501', 'wss://gw.example:443/trellis/v2/link'];
      gateway.send({ type: 'register-gateway', addresses });
      const expected = { zone: 'a', name: 'ga', gatewayId: ga.gatewayId, addresses, links: [] };
      await waitForChange(watcher, 'gateway/a/ga', expected);
      // The gateway itself gets config too: it needs routes, endpoints and the other gateways.
      assert.deepEqual(new Map((await gateway.waitFor(isSnapshot)).entries).get('gateway/a/ga'), expected);
      const late = await sidecarWatcher(cp, dir.path, caPem, 'db');
      assert.deepEqual(new Map(late.messages.find(isSnapshot)?.entries).get('gateway/a/ga'), expected);
      assert.deepEqual(await gatewaysView(cp, dir.path), { gateways: [{ ...expected, connected: true }], routes: [] });
      // /v1/services lists endpoints only.
      const services = await call(cp, dir.path, 'GET', '/v1/services', { token: await adminTokenOf(cp) });
      assert.deepEqual(Object.keys((services.json as { services: object }).services).sort(), ['db', 'web']);
      await Promise.all([watcher.close(), late.close(), gateway.close()]);
    });
  });

  it('links reported between gateways of zones a and c publish routes both ways, and withdraw them', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const watcher = await sidecarWatcher(cp, dir.path, caPem);
      const ga = await connect(cp, caPem, await joinAsGateway(cp, dir.path, 'a', 'ga'));
      // gc is private: it advertises no address and dials out, so only its side reports the link.
      const gc = await connect(cp, caPem, await joinAsGateway(cp, dir.path, 'c', 'gc'));
      ga.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7501'] });
      gc.send({ type: 'register-gateway', addresses: [] });
      await waitForChange(watcher, 'gateway/a/ga');
      await waitForChange(watcher, 'gateway/c/gc');
      assert.ok(!watcher.messages.some((m) => isDelta(m) && m.changes.some(([k]) => k.startsWith('route/'))), 'no route without links');

      gc.send({ type: 'gateway-links', peers: ['a/ga'] });
      const toC = { from: 'a', to: 'c', paths: [['a/ga', 'c/gc']] };
      const toA = { from: 'c', to: 'a', paths: [['c/gc', 'a/ga']] };
      const routed = await waitForChange(watcher, 'route/a/c', toC);
      // The routes come in the same version step as the links that made them.
      const changes = new Map(routed.changes);
      assert.deepEqual(changes.get('route/c/a'), toA);
      assert.deepEqual((changes.get('gateway/c/gc') as { links: string[] }).links, ['a/ga']);
      const view = await gatewaysView(cp, dir.path);
      assert.deepEqual(view.routes, [toC, toA]);
      assert.deepEqual(view.gateways.map((g) => [g.zone, g.name, g.connected]), [['a', 'ga', true], ['c', 'gc', true]]);

      // The other end reporting the same link changes the graph's links, not its routes.
      const mark = watcher.messages.length;
      ga.send({ type: 'gateway-links', peers: ['c/gc'] });
      const same = await waitForChange(watcher, 'gateway/a/ga', 'any', mark);
      assert.ok(!same.changes.some(([k]) => k.startsWith('route/')), 'an unchanged route was written again');

      ga.send({ type: 'gateway-links', peers: [] });
      gc.send({ type: 'gateway-links', peers: [] });
      await waitForChange(watcher, 'route/a/c', null, mark);
      await waitForChange(watcher, 'route/c/a', null, mark);
      assert.deepEqual((await gatewaysView(cp, dir.path)).routes, []);
      await Promise.all([watcher.close(), ga.close(), gc.close()]);
    });
  });

  it('refuses the other kind\'s messages as invalid (1008), and gateway messages before register-gateway', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const db = await joinAs(cp, dir.path, 'db');
      const ga = await joinAsGateway(cp, dir.path, 'a', 'ga');
      const refusals: Array<[Credentials, Parameters<ChannelClient['send']>[0][], string]> = [
        [db, [{ type: 'gateway-links', peers: ['c/gc'] }], 'TRELLIS_ERR_INVALID'],
        [db, [{ type: 'register-gateway', addresses: [] }], 'TRELLIS_ERR_INVALID'],
        [db, [{ type: 'register', address: '127.0.0.1:7401', zone: 'a', weight: 1 }, { type: 'gateway-links', peers: [] }], 'TRELLIS_ERR_INVALID'],
        [ga, [{ type: 'register', address: '127.0.0.1:7501', zone: 'a', weight: 1 }], 'TRELLIS_ERR_INVALID'],
        [ga, [{ type: 'register-gateway', addresses: [] }, { type: 'health', healthy: false }], 'TRELLIS_ERR_INVALID'],
        [ga, [{ type: 'gateway-links', peers: [] }], 'TRELLIS_ERR_NOT_REGISTERED'],
        [ga, [{ type: 'ack', version: 1 }], 'TRELLIS_ERR_NOT_REGISTERED'],
      ];
      for (const [credentials, messages, code] of refusals) {
        const client = await connect(cp, caPem, credentials);
        for (const message of messages) client.send(message);
        assert.equal((await client.waitFor(isError)).code, code, JSON.stringify(messages));
        assert.equal(await client.closed, 1008, JSON.stringify(messages));
      }
    });
  });

  it('renews a gateway leaf, replaces an older session (4000), and deregister removes the entry at once', async () => {
    await withTestControlPlane({ leaseTtlMs: 60_000 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const watcher = await sidecarWatcher(cp, dir.path, caPem);
      const ga = await joinAsGateway(cp, dir.path, 'a', 'ga');
      const older = await connect(cp, caPem, ga);
      older.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7501'] });
      await older.waitFor(isSnapshot);

      older.send({ type: 'renew', csrPem: makeCsr().csrPem });
      const renewed = new X509Certificate((await older.waitFor(isCertificate)).certPem);
      assert.equal(renewed.subjectAltName, 'URI:spiffe://trellis.local/gw/a/ga');
      assert.match(renewed.subject, new RegExp(`CN=${ga.gatewayId}`));
      assert.ok(renewed.verify(new X509Certificate(caPem).publicKey));

      const newer = await connect(cp, caPem, ga);
      newer.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7509'] });
      assert.equal(await older.closed, 4000);
      await waitForChange(watcher, 'gateway/a/ga', { zone: 'a', name: 'ga', gatewayId: ga.gatewayId, addresses: ['tls://127.0.0.1:7509'], links: [] });
      assert.deepEqual((await gatewaysView(cp, dir.path)).gateways.map((g) => g.connected), [true]);

      // The lease is a minute long: only deregister can remove the entry this soon.
      newer.send({ type: 'deregister' });
      await waitForChange(watcher, 'gateway/a/ga', null);
      assert.deepEqual((await gatewaysView(cp, dir.path)).gateways, []);
      await Promise.all([watcher.close(), newer.close()]);
    });
  });

  it('removes a gateway entry, and the routes through it, when its lease runs out after the channel closes', async () => {
    await withTestControlPlane({ leaseTtlMs: 300 }, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const watcher = await sidecarWatcher(cp, dir.path, caPem);
      const gaJoined = await joinAsGateway(cp, dir.path, 'a', 'ga');
      const ga = await connect(cp, caPem, gaJoined);
      const gc = await connect(cp, caPem, await joinAsGateway(cp, dir.path, 'c', 'gc'));
      ga.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7501'] });
      gc.send({ type: 'register-gateway', addresses: [] });
      await gc.waitFor(isSnapshot);
      gc.send({ type: 'gateway-links', peers: ['a/ga'] });
      await waitForChange(watcher, 'route/c/a');

      await gc.close();
      const closedAt = Date.now();
      assert.deepEqual((await gatewaysView(cp, dir.path)).gateways.map((g) => [g.name, g.connected]), [['ga', true], ['gc', false]]);
      const removed = await waitForChange(watcher, 'gateway/c/gc', null);
      assert.ok(Date.now() - closedAt >= 250, 'removed before the lease ran out');
      const changes = new Map(removed.changes);
      assert.equal(changes.get('route/a/c'), null);
      assert.equal(changes.get('route/c/a'), null);
      const remaining = { zone: 'a', name: 'ga', gatewayId: gaJoined.gatewayId, addresses: ['tls://127.0.0.1:7501'], links: [], connected: true };
      assert.deepEqual(await gatewaysView(cp, dir.path), { gateways: [remaining], routes: [] });
      await Promise.all([watcher.close(), ga.close()]);
    });
  });
});
