// The admin API refuses every call without the admin token and counts each refusal by route
// and reason; failed joins are rate-limited per source address and counted.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import { JOIN_FAILURE_BURST, JoinFailureLimiter } from '../../control-plane/join-rate-limiter.js';
import { ApiError } from '../../control-plane/errors.js';
import { ControlErrorCode } from '../../proto/control.js';
import { encodeAdminToken, encodeJoinToken, parseAdminToken, parseJoinToken } from '../../proto/tokens.js';
import { adminTokenOf, assertError, call, createGatewayToken, createJoinToken, makeCsr, withTestControlPlane } from './helpers.js';

/** Every admin route, with a body it would accept from an admin. */
const ADMIN_ROUTES: Array<{ method: string; path: string; body?: unknown }> = [
  { method: 'POST', path: '/v1/tokens', body: { service: 'db' } },
  { method: 'GET', path: '/v1/tokens' },
  { method: 'POST', path: '/v1/tokens/revoke', body: { id: '0123456789abcdef' } },
  { method: 'GET', path: '/v1/policies' },
  { method: 'PUT', path: '/v1/policies/default', body: { action: 'deny' } },
  { method: 'PUT', path: '/v1/policies/rules', body: { from: 'web', to: 'db', action: 'deny' } },
  { method: 'DELETE', path: '/v1/policies/rules', body: { from: 'web', to: 'db' } },
  { method: 'GET', path: '/v1/services' },
  { method: 'GET', path: '/v1/gateways' },
];

/** The value of one sample of the control plane's /metrics, 0 when absent. */
async function sample(cp: ControlPlane, dataDir: string, series: string): Promise<number> {
  const text = (await call(cp, dataDir, 'GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('admin API authentication', () => {
  it('refuses every admin route without a valid admin token, changes nothing, and counts each refusal by route and reason', async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const admin = parseAdminToken(await adminTokenOf(cp));
      const credentials: Array<{ reason: string; token: string | undefined }> = [
        { reason: 'missing', token: undefined },
        { reason: 'malformed', token: 'trellis-admin-v1.garbage' },
        { reason: 'join_token', token: await createJoinToken(cp, dir.path, 'db') },
        { reason: 'join_token', token: await createGatewayToken(cp, dir.path, 'a', 'ga') },
        { reason: 'unknown', token: encodeAdminToken({ ...admin, secret: Buffer.alloc(32, 7).toString('base64url') }) },
        { reason: 'unknown', token: encodeAdminToken({ ...admin, id: 'ffffffffffffffff' }) },
      ];
      for (const route of ADMIN_ROUTES) {
        for (const { token } of credentials) {
          const answer = await call(cp, dir.path, route.method, route.path, { body: route.body, token });
          assertError(answer, 401, ControlErrorCode.UNAUTHORIZED);
        }
      }
      const expected = new Map<string, number>();
      for (const route of ADMIN_ROUTES) {
        for (const { reason } of credentials) {
          const series = `trellis_cp_admin_refusals_total{route="${route.path}",reason="${reason}"}`;
          expected.set(series, (expected.get(series) ?? 0) + 1);
        }
      }
      for (const [series, count] of expected) assert.equal(await sample(cp, dir.path, series), count, series);
      // The refused PUT changed no policy; the admin token still works.
      const policies = await call(cp, dir.path, 'GET', '/v1/policies', { token: await adminTokenOf(cp) });
      assert.deepEqual((policies.json as { defaultAction: string; rules: unknown[] }).defaultAction, 'allow');
      assert.deepEqual((policies.json as { rules: unknown[] }).rules, []);
    });
  });
});

describe('rate limit of failed joins', () => {
  it(`answers 429 TRELLIS_ERR_RATE_LIMITED after ${JOIN_FAILURE_BURST} failures from one address, also to a valid token, and not to other addresses`, async () => {
    await withTestControlPlane({}, async (cp, dir) => {
      const valid = await createJoinToken(cp, dir.path, 'db');
      const unknown = encodeJoinToken({ ...parseJoinToken(valid), id: 'ffffffffffffffff' });
      const csrPem = makeCsr().csrPem;
      const join = (token: string, localAddress: string) => call(cp, dir.path, 'POST', '/v1/join', { body: { token, csrPem, service: 'db' }, localAddress });
      for (let i = 0; i < JOIN_FAILURE_BURST; i++) assertError(await join(unknown, '127.0.0.1'), 401, ControlErrorCode.TOKEN_UNKNOWN);
      assertError(await join(unknown, '127.0.0.1'), 429, ControlErrorCode.RATE_LIMITED);
      assertError(await join(valid, '127.0.0.1'), 429, ControlErrorCode.RATE_LIMITED);
      const gatewayJoin = await call(cp, dir.path, 'POST', '/v1/join-gateway', { body: { token: valid, csrPem, zone: 'a', name: 'ga' }, localAddress: '127.0.0.1' });
      assertError(gatewayJoin, 429, ControlErrorCode.RATE_LIMITED);
      // Another source address has its own bucket.
      assertError(await join(unknown, '127.0.0.2'), 401, ControlErrorCode.TOKEN_UNKNOWN);
      assert.equal((await join(valid, '127.0.0.2')).status, 200);
      assert.equal(await sample(cp, dir.path, 'trellis_cp_joins_total{result="rate_limited"}'), 3);
      assert.equal(await sample(cp, dir.path, 'trellis_cp_joins_total{result="token_unknown"}'), JOIN_FAILURE_BURST + 1);
    });
  });
});

describe('JoinFailureLimiter', () => {
  const rateLimited = (err: unknown): boolean => err instanceof ApiError && err.code === ControlErrorCode.RATE_LIMITED && err.httpStatus === 429;

  it('refills one failure per interval and forgets an address once its bucket is full again', () => {
    let nowMs = 1_000_000;
    const limiter = new JoinFailureLimiter({ burst: 3, refillMs: 1000, now: () => nowMs });
    for (let i = 0; i < 3; i++) {
      limiter.check('10.0.0.1');
      limiter.failed('10.0.0.1');
    }
    assert.throws(() => limiter.check('10.0.0.1'), rateLimited);
    nowMs += 999;
    assert.throws(() => limiter.check('10.0.0.1'), rateLimited);
    nowMs += 1;
    limiter.check('10.0.0.1');
    limiter.failed('10.0.0.1');
    assert.throws(() => limiter.check('10.0.0.1'), rateLimited);
    limiter.check('10.0.0.2');
    nowMs += 3000;
    limiter.check('10.0.0.1');
    assert.equal(limiter.trackedSources, 0);
  });

  it('tracks at most maxSources addresses, forgetting the one that failed longest ago', () => {
    const limiter = new JoinFailureLimiter({ burst: 1, refillMs: 60_000, maxSources: 2, now: () => 0 });
    limiter.failed('a');
    assert.throws(() => limiter.check('a'), rateLimited);
    limiter.failed('b');
    limiter.failed('c');
    assert.equal(limiter.trackedSources, 2);
    limiter.check('a');
    assert.throws(() => limiter.check('b'), rateLimited);
    assert.throws(() => limiter.check('c'), rateLimited);
  });
});
