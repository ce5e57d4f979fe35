// The join-token lifecycle through the REST API of a real control plane over HTTPS: single
// use, revocation, listing, hashes only, and every misuse refused with its own code.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import { ControlErrorCode } from '../../proto/control.js';
import type { TokenInfo } from '../../proto/tokens.js';
import { parseGatewayToken, parseJoinToken, tokenListSchema } from '../../proto/tokens.js';
import type { Answer } from './helpers.js';
import { adminTokenOf, assertError, call, makeCsr, startTestControlPlane, tempDir } from './helpers.js';

// Each test gets its own control plane: the failed joins of one would count against the
// next (they all come from 127.0.0.1) and trip the rate limit.
describe('join-token lifecycle', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cp: ControlPlane;
  let nowMs = Date.now();

  beforeEach(async () => {
    dir = await tempDir();
    cp = await startTestControlPlane(dir.path, { now: () => nowMs });
  });
  afterEach(async () => {
    await cp.close();
    await dir.remove();
  });

  const admin = async (method: string, path: string, body?: unknown): Promise<Answer> => call(cp, dir.path, method, path, { body, token: await adminTokenOf(cp) });
  const create = async (body: Record<string, unknown>): Promise<string> => {
    const answer = await admin('POST', '/v1/tokens', body);
    assert.equal(answer.status, 201, answer.text);
    return (answer.json as { token: string }).token;
  };
  const joinSidecar = (token: string, service: string, csrPem = makeCsr().csrPem): Promise<Answer> => call(cp, dir.path, 'POST', '/v1/join', { body: { token, csrPem, service } });
  const joinGateway = (token: string, zone: string, name: string): Promise<Answer> =>
    call(cp, dir.path, 'POST', '/v1/join-gateway', { body: { token, csrPem: makeCsr().csrPem, zone, name } });
  const listed = async (): Promise<TokenInfo[]> => {
    const answer = await admin('GET', '/v1/tokens');
    assert.equal(answer.status, 200, answer.text);
    return tokenListSchema.parse(answer.json).tokens;
  };
  const revoke = (id: string): Promise<Answer> => admin('POST', '/v1/tokens/revoke', { id });

  it('a --once token lets exactly one join through, and a failed join does not use it up', async () => {
    const token = await create({ service: 'db', ttlSeconds: 600, once: true });
    // A CSR the CA refuses: the join fails, so the token is still there for a good one.
    assertError(await joinSidecar(token, 'db', 'not a csr'), 400, ControlErrorCode.BAD_CSR);
    assert.equal((await joinSidecar(token, 'db')).status, 200);
    assertError(await joinSidecar(token, 'db'), 401, ControlErrorCode.TOKEN_USED);
    const info = (await listed()).find((t) => t.id === parseJoinToken(token).id);
    assert.equal(info?.once, true);
    assert.equal(info?.usedAt, nowMs);
  });

  // On one replica with the file store, reads see a write as soon as it is made, so this holds
  // even without the compare-and-swap; token-replicas.test.ts races two replicas on etcd.
  it('of many joins sent at once with one --once token, exactly one gets a certificate', async () => {
    const token = await create({ service: 'db', ttlSeconds: 600, once: true });
    const answers = await Promise.all(Array.from({ length: 12 }, () => joinSidecar(token, 'db')));
    const ok = answers.filter((a) => a.status === 200);
    assert.equal(ok.length, 1, answers.map((a) => a.text).join('\n'));
    for (const refused of answers.filter((a) => a.status !== 200)) assertError(refused, 401, ControlErrorCode.TOKEN_USED);
  });

  it('a reusable token stays reusable; a gateway token can be single use too', async () => {
    const reusable = await create({ service: 'web', ttlSeconds: 600 });
    for (let i = 0; i < 3; i++) assert.equal((await joinSidecar(reusable, 'web')).status, 200);
    const gateway = await create({ gateway: 'ga', zone: 'a', ttlSeconds: 600, once: true });
    assert.equal((await joinGateway(gateway, 'a', 'ga')).status, 200);
    assertError(await joinGateway(gateway, 'a', 'ga'), 401, ControlErrorCode.TOKEN_USED);
  });

  it('a revoked token is refused with its own code; revoking again changes nothing; an unknown id is 404', async () => {
    const token = await create({ service: 'api', ttlSeconds: 600 });
    const { id } = parseJoinToken(token);
    assert.equal((await joinSidecar(token, 'api')).status, 200);
    nowMs += 1000;
    const revoked = await revoke(id);
    assert.equal(revoked.status, 200, revoked.text);
    assert.equal((revoked.json as TokenInfo).revokedAt, nowMs);
    assertError(await joinSidecar(token, 'api'), 401, ControlErrorCode.TOKEN_REVOKED);
    nowMs += 1000;
    assert.equal(((await revoke(id)).json as TokenInfo).revokedAt, nowMs - 1000);
    assertError(await revoke('0000000000000000'), 404, ControlErrorCode.NOT_FOUND);
    assertError(await admin('POST', '/v1/tokens/revoke', { id: '../../etc' }), 400, ControlErrorCode.INVALID);
    assertError(await admin('POST', '/v1/tokens/revoke', { id, extra: 1 }), 400, ControlErrorCode.INVALID);
    const gateway = await create({ gateway: 'gb', zone: 'b', ttlSeconds: 600 });
    assert.equal((await revoke(parseGatewayToken(gateway).id)).status, 200);
    assertError(await joinGateway(gateway, 'b', 'gb'), 401, ControlErrorCode.TOKEN_REVOKED);
  });

  it('misuse: used, revoked, expired, wrong kind both ways, wrong service or gateway: each its own code', async () => {
    const once = await create({ service: 'db', ttlSeconds: 600, once: true });
    assert.equal((await joinSidecar(once, 'db')).status, 200);
    const revoked = await create({ service: 'db', ttlSeconds: 600 });
    await revoke(parseJoinToken(revoked).id);
    const expiring = await create({ service: 'db', ttlSeconds: 60 });
    const gatewayToken = await create({ gateway: 'gc', zone: 'c', ttlSeconds: 600 });
    const serviceToken = await create({ service: 'db', ttlSeconds: 600 });
    nowMs += 61_000;
    assertError(await joinSidecar(once, 'db'), 401, ControlErrorCode.TOKEN_USED);
    assertError(await joinSidecar(revoked, 'db'), 401, ControlErrorCode.TOKEN_REVOKED);
    assertError(await joinSidecar(expiring, 'db'), 401, ControlErrorCode.TOKEN_EXPIRED);
    assertError(await joinSidecar(gatewayToken, 'db'), 403, ControlErrorCode.TOKEN_WRONG_KIND);
    assertError(await joinGateway(serviceToken, 'c', 'gc'), 403, ControlErrorCode.TOKEN_WRONG_KIND);
    assertError(await joinSidecar(serviceToken, 'web'), 403, ControlErrorCode.TOKEN_WRONG_SERVICE);
    assertError(await joinGateway(gatewayToken, 'c', 'other'), 403, ControlErrorCode.TOKEN_WRONG_SERVICE);
    assertError(await joinGateway(gatewayToken, 'd', 'gc'), 403, ControlErrorCode.TOKEN_WRONG_SERVICE);
    const metrics = (await call(cp, dir.path, 'GET', '/metrics')).text;
    for (const result of ['token_used', 'token_revoked', 'token_expired', 'wrong_kind', 'wrong_service']) {
      assert.ok(new RegExp(`^trellis_cp_joins_total\\{result="${result}"\\} [1-9]`, 'm').test(metrics), `${result} counted:\n${metrics}`);
    }
  });

  it('lists every token with its binding and state but no secret, and stores only hashes', async () => {
    const createdAt = nowMs;
    const service = await create({ service: 'list-me', ttlSeconds: 3600, once: true });
    const gateway = await create({ gateway: 'gl', zone: 'l', ttlSeconds: 7200 });
    const tokens = await listed();
    const byId = new Map(tokens.map((t) => [t.id, t]));
    assert.deepEqual(byId.get(parseJoinToken(service).id), { id: parseJoinToken(service).id, kind: 'service', service: 'list-me', createdAt, expiresAt: createdAt + 3_600_000, once: true });
    assert.deepEqual(byId.get(parseGatewayToken(gateway).id), { id: parseGatewayToken(gateway).id, kind: 'gateway', zone: 'l', gateway: 'gl', createdAt, expiresAt: createdAt + 7_200_000, once: false });
    const listText = (await admin('GET', '/v1/tokens')).text;
    // The store's files: the journal holds the recent writes, the snapshot (if any yet) the rest.
    const stateText = (await readFile(join(dir.path, 'state.journal'), 'utf8')) + (await readFile(join(dir.path, 'state.json'), 'utf8').catch(() => ''));
    for (const secret of [parseJoinToken(service).secret, parseGatewayToken(gateway).secret]) {
      assert.equal(listText.includes(secret), false);
      assert.equal(stateText.includes(secret), false);
    }
    assert.equal(listText.includes('secretSha256'), false);
    assert.equal(stateText.includes('secretSha256'), true);
  });
});
