// Revocation on the control plane: the entry and the endpoint's removal in one step, the
// revoked session closed with 4003, its upgrade refused, joins of a revoked service refused.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RevocationsView } from '../../proto/control.js';
import { ControlErrorCode } from '../../proto/control.js';
import { CLOSE_REVOKED } from '../../control-plane/sidecar-channel.js';
import { ChannelClient, adminTokenOf, assertError, call, caPemOf, createJoinToken, isDelta, isSnapshot, joinAs, joinAsGateway, makeCsr, withTestControlPlane } from './helpers.js';

describe('revocations on the control plane', () => {
  it('revoking a sidecar removes its endpoint in the same delta, closes its session (4003) and refuses its upgrades', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      const [db, web] = [await joinAs(cp, dir.path, 'db'), await joinAs(cp, dir.path, 'web')];
      const revokedClient = new ChannelClient(cp, caPem, db);
      const watcher = new ChannelClient(cp, caPem, web);
      await Promise.all([revokedClient.opened, watcher.opened]);
      revokedClient.send({ type: 'register', address: '127.0.0.1:7401', zone: 'z1', weight: 1 });
      await revokedClient.waitFor(isSnapshot);
      watcher.send({ type: 'register', address: '127.0.0.1:7402', zone: 'z1', weight: 1 });
      const snapshot = await watcher.waitFor(isSnapshot);
      assert.ok(new Map(snapshot.entries).has(`endpoint/db/${db.sidecarId}`));

      const revoked = await call(cp, dir.path, 'POST', '/v1/revocations', { body: { sidecarId: db.sidecarId }, token });
      assert.equal(revoked.status, 201, revoked.text);
      const view = revoked.json as RevocationsView;
      assert.equal(view.known, true);
      assert.deepEqual(view.sidecars.map((entry) => entry.sidecarId), [db.sidecarId]);
      assert.equal(await revokedClient.closed, CLOSE_REVOKED);

      const delta = await watcher.waitFor((m): m is Extract<typeof m, { type: 'delta' }> => isDelta(m) && m.changes.some(([key]) => key.startsWith('revoked/')));
      assert.deepEqual(new Map(delta.changes), new Map<string, unknown>([
        [`revoked/sidecar/${db.sidecarId}`, view.sidecars[0]],
        [`endpoint/db/${db.sidecarId}`, null],
      ]));
      await assert.rejects(new ChannelClient(cp, caPem, db).opened, { message: 'HTTP 403' });
      watcher.ws.close();
    });
  });

  it('a gateway can be revoked by its id too: its session closes and stays refused', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const gateway = await joinAsGateway(cp, dir.path, 'east', 'gw1');
      const client = new ChannelClient(cp, caPem, gateway);
      await client.opened;
      client.send({ type: 'register-gateway', addresses: ['tls://127.0.0.1:7500'] });
      await client.waitFor(isSnapshot);
      const revoked = await call(cp, dir.path, 'POST', '/v1/revocations', { body: { sidecarId: gateway.gatewayId }, token: await adminTokenOf(cp) });
      assert.equal(revoked.status, 201, revoked.text);
      assert.equal(await client.closed, CLOSE_REVOKED);
      await assert.rejects(new ChannelClient(cp, caPem, gateway).opened, { message: 'HTTP 403' });
    });
  });

  it('a revoked service may not join until joins are allowed again; bad requests are refused by code', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const token = await adminTokenOf(cp);
      const revoked = await call(cp, dir.path, 'POST', '/v1/revocations', { body: { service: 'db' }, token });
      assert.equal(revoked.status, 201, revoked.text);
      assert.equal((revoked.json as RevocationsView).known, false);
      const join = async () => call(cp, dir.path, 'POST', '/v1/join', { body: { token: await createJoinToken(cp, dir.path, 'db'), csrPem: makeCsr().csrPem, service: 'db' } });
      assertError(await join(), 403, ControlErrorCode.REVOKED);
      const metrics = await call(cp, dir.path, 'GET', '/metrics');
      assert.ok(metrics.text.includes('result="revoked"'), 'the refused join is counted as revoked');

      assert.equal((await call(cp, dir.path, 'DELETE', '/v1/revocations', { body: { service: 'db' }, token })).status, 200);
      assert.equal((await join()).status, 200);

      assertError(await call(cp, dir.path, 'POST', '/v1/revocations', { body: { service: 'db', sidecarId: 'sc-1' }, token }), 400, ControlErrorCode.INVALID);
      assertError(await call(cp, dir.path, 'POST', '/v1/revocations', { body: {}, token }), 400, ControlErrorCode.INVALID);
      assertError(await call(cp, dir.path, 'DELETE', '/v1/revocations', { body: { service: 'web' }, token }), 404, ControlErrorCode.NOT_FOUND);
      assertError(await call(cp, dir.path, 'GET', '/v1/revocations'), 401, ControlErrorCode.UNAUTHORIZED);
    });
  });

  it('a sidecar that joins at once after joins are allowed again is not taken for revoked (notBefore keeps whole seconds)', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const caPem = await caPemOf(dir.path);
      const token = await adminTokenOf(cp);
      // Early in a second, so that revoking, allowing and joining all fall in it: a leaf signed
      // in the second of the revocation had its notBefore cut to the cut-off.
      while (Date.now() % 1000 > 200) await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000)));
      assert.equal((await call(cp, dir.path, 'POST', '/v1/revocations', { body: { service: 'db' }, token })).status, 201);
      assert.equal((await call(cp, dir.path, 'DELETE', '/v1/revocations', { body: { service: 'db' }, token })).status, 200);
      const db = await joinAs(cp, dir.path, 'db');
      const client = new ChannelClient(cp, caPem, db);
      await client.opened;
      client.ws.close();
    });
  });

  it('closeExisting goes with deny only, and is stored only when set', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const token = await adminTokenOf(cp);
      assertError(await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'allow', closeExisting: true }, token }), 400, ControlErrorCode.INVALID);
      assertError(await call(cp, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'allow', closeExisting: true }, token }), 400, ControlErrorCode.INVALID);
      const denied = await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'deny', closeExisting: true }, token });
      assert.deepEqual((denied.json as { rules: unknown[] }).rules, [{ from: 'web', to: 'db', action: 'deny', closeExisting: true }]);
      const plain = await call(cp, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: 'db', action: 'deny', closeExisting: false }, token });
      assert.deepEqual((plain.json as { rules: unknown[] }).rules, [{ from: 'web', to: 'db', action: 'deny' }]);
    });
  });
});
