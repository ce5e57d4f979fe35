import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeAdminToken, parseAdminToken } from '../../proto/tokens.js';
import { adminTokenOf, assertError, call, createJoinToken, startTestControlPlane, tempDir, withTestControlPlane } from './helpers.js';

describe('admin API', () => {
  it('rejects a missing, malformed, unknown or join token with 401', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const admin = parseAdminToken(await adminTokenOf(cp));
      const joinToken = await createJoinToken(cp, dir.path, 'db');
      const wrongSecret = encodeAdminToken({ ...admin, secret: Buffer.alloc(32, 1).toString('base64url') });
      for (const path of ['/v1/policies', '/v1/services']) {
        assertError(await call(cp, dir.path, 'GET', path), 401, 'TRELLIS_ERR_UNAUTHORIZED');
        for (const token of ['garbage', joinToken, wrongSecret]) {
          assertError(await call(cp, dir.path, 'GET', path, { token }), 401, 'TRELLIS_ERR_UNAUTHORIZED');
        }
      }
      assertError(await call(cp, dir.path, 'POST', '/v1/tokens', { body: { service: 'db' }, token: wrongSecret }), 401, 'TRELLIS_ERR_UNAUTHORIZED');
    });
  });

  it('answers unknown routes with 404 and wrong methods with 405', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      assertError(await call(cp, dir.path, 'GET', '/v1/nothing'), 404, 'TRELLIS_ERR_NOT_FOUND');
      assertError(await call(cp, dir.path, 'DELETE', '/v1/trust-bundle'), 405, 'TRELLIS_ERR_METHOD_NOT_ALLOWED');
      const token = await adminTokenOf(cp);
      assertError(await call(cp, dir.path, 'POST', '/v1/tokens', { body: { service: 'db', ttlSeconds: 0 }, token }), 400, 'TRELLIS_ERR_INVALID');
      assertError(await call(cp, dir.path, 'DELETE', '/v1/policies/rules', { body: { from: 'a', to: 'b' }, token }), 404, 'TRELLIS_ERR_NOT_FOUND');
    });
  });

  it('changes policies, bumping the version, and keeps them across a restart', async () => {
    const dir = await tempDir();
    const first = await startTestControlPlane(dir.path);
    const token = await adminTokenOf(first);
    let version: number;
    try {
      const initial = (await call(first, dir.path, 'GET', '/v1/policies', { token })).json as { defaultAction: string; rules: unknown[]; version: number };
      assert.equal(initial.defaultAction, 'allow');
      assert.deepEqual(initial.rules, []);
      const denied = await call(first, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'deny' }, token });
      assert.equal(denied.status, 200, denied.text);
      // Versions are store revisions: they grow with every change, not always by one.
      let previous = (denied.json as { version: number }).version;
      assert.ok(previous > initial.version);
      for (const body of [
        { from: 'web', to: 'db', action: 'allow' },
        { from: '*', to: 'db', action: 'deny' },
        { from: 'old', to: 'db', action: 'allow' },
      ]) {
        const next = (await call(first, dir.path, 'PUT', '/v1/policies/rules', { body, token })).json as { version: number };
        assert.ok(next.version > previous);
        previous = next.version;
      }
      const removed = await call(first, dir.path, 'DELETE', '/v1/policies/rules', { body: { from: 'old', to: 'db' }, token });
      assert.equal(removed.status, 200, removed.text);
      version = (removed.json as { version: number }).version;
      assert.ok(version > previous);
      // Setting what is already set changes nothing, so the version stays.
      const same = await call(first, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'deny' }, token });
      assert.equal((same.json as { version: number }).version, version);
      assertError(await call(first, dir.path, 'PUT', '/v1/policies/rules', { body: { from: 'web', to: '*', action: 'allow' }, token }), 400, 'TRELLIS_ERR_INVALID');
    } finally {
      await first.close();
    }
    const second = await startTestControlPlane(dir.path);
    try {
      const after = (await call(second, dir.path, 'GET', '/v1/policies', { token })).json as { version: number };
      // A restart may seal what the store changed while it was down with a version of its own.
      assert.ok(after.version >= version);
      assert.deepEqual(after, {
        defaultAction: 'deny',
        rules: [
          { from: '*', to: 'db', action: 'deny' },
          { from: 'web', to: 'db', action: 'allow' },
        ],
        version: after.version,
      });
      const next = await call(second, dir.path, 'PUT', '/v1/policies/default', { body: { action: 'allow' }, token });
      assert.ok((next.json as { version: number }).version > after.version);
    } finally {
      await second.close();
      await dir.remove();
    }
  });
});
