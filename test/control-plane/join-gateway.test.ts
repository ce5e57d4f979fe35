import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import type { JoinGatewayResponse } from '../../proto/control.js';
import { joinGatewayResponseSchema } from '../../proto/control.js';
import { encodeGatewayToken, encodeJoinToken, parseGatewayToken, parseJoinToken } from '../../proto/tokens.js';
import { adminTokenOf, assertError, call, caPemOf, createGatewayToken, createJoinToken, makeCsr, startTestControlPlane, tempDir } from './helpers.js';

describe('gateway tokens and POST /v1/join-gateway', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let cp: ControlPlane;
  let nowMs = Date.now();
  const csr = makeCsr();

  before(async () => {
    dir = await tempDir();
    cp = await startTestControlPlane(dir.path, { leafTtlMs: 60 * 60 * 1000, now: () => nowMs });
  });
  after(async () => {
    await cp.close();
    await dir.remove();
  });

  const joinGateway = (body: unknown) => call(cp, dir.path, 'POST', '/v1/join-gateway', { body });
  const joinSidecar = (body: unknown) => call(cp, dir.path, 'POST', '/v1/join', { body });

  it('creates a gateway token bound to a zone and name', async () => {
    const answer = await call(cp, dir.path, 'POST', '/v1/tokens', { body: { gateway: 'ga', zone: 'a', ttlSeconds: 600 }, token: await adminTokenOf(cp) });
    assert.equal(answer.status, 201, answer.text);
    const { token, expiresAt } = answer.json as { token: string; expiresAt: number };
    const parsed = parseGatewayToken(token);
    assert.equal(parsed.zone, 'a');
    assert.equal(parsed.gateway, 'ga');
    assert.equal(parsed.caFingerprint, cp.caFingerprint);
    assert.equal(parsed.expiresAt, expiresAt);
    assert.equal(expiresAt, nowMs + 600_000);
  });

  it('refuses a token request for both a service and a gateway, or a zone without a gateway', async () => {
    const admin = await adminTokenOf(cp);
    const both = await call(cp, dir.path, 'POST', '/v1/tokens', { body: { service: 'db', gateway: 'ga', zone: 'a' }, token: admin });
    assertError(both, 400, 'TRELLIS_ERR_INVALID');
    assertError(await call(cp, dir.path, 'POST', '/v1/tokens', { body: { gateway: 'ga' }, token: admin }), 400, 'TRELLIS_ERR_INVALID');
    assertError(await call(cp, dir.path, 'POST', '/v1/tokens', { body: { gateway: 'ga', zone: 'Bad_Zone' }, token: admin }), 400, 'TRELLIS_ERR_INVALID');
  });

  it('signs a gateway leaf: CN = gateway id, the one URI SAN = the gateway, chained to the CA', async () => {
    const token = await createGatewayToken(cp, dir.path, 'a', 'ga');
    const answer = await joinGateway({ token, csrPem: csr.csrPem, zone: 'a', name: 'ga' });
    assert.equal(answer.status, 200, answer.text);
    const body: JoinGatewayResponse = joinGatewayResponseSchema.parse(answer.json);
    assert.match(body.gatewayId, /^gw-[0-9a-f]{12}$/);
    assert.equal(body.zone, 'a');
    assert.equal(body.name, 'ga');
    assert.equal(body.spiffeId, 'spiffe://trellis.local/gw/a/ga');
    assert.equal(body.trustDomain, 'trellis.local');
    const caPem = await caPemOf(dir.path);
    assert.deepEqual(body.caPems, [caPem]);
    const cert = new X509Certificate(body.certPem);
    const ca = new X509Certificate(caPem);
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkIssued(ca));
    assert.equal(cert.subjectAltName, 'URI:spiffe://trellis.local/gw/a/ga');
    assert.match(cert.subject, new RegExp(`CN=${body.gatewayId}`));
    assert.equal(cert.ca, false);
    assert.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.1') && cert.keyUsage.includes('1.3.6.1.5.5.7.3.2'));
    assert.ok(Math.abs(body.expiresAt - (nowMs + 60 * 60 * 1000)) < 1000);
    assert.equal(Date.parse(cert.validTo), Math.floor(body.expiresAt / 1000) * 1000);

    // Like join tokens, a gateway token is reusable until it expires (a restarted gateway joins again).
    const again = await joinGateway({ token, csrPem: makeCsr().csrPem, zone: 'a', name: 'ga' });
    assert.equal(again.status, 200, again.text);
    assert.notEqual((again.json as JoinGatewayResponse).gatewayId, body.gatewayId);
  });

  it('refuses a gateway token at /v1/join, also re-wrapped as a join token (TOKEN_WRONG_KIND)', async () => {
    const token = await createGatewayToken(cp, dir.path, 'a', 'ga');
    assertError(await joinSidecar({ token, csrPem: csr.csrPem, service: 'ga' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_KIND');
    const { zone: _zone, gateway: _gateway, ...credentials } = parseGatewayToken(token);
    const rewrapped = encodeJoinToken({ ...credentials, service: 'ga' });
    assertError(await joinSidecar({ token: rewrapped, csrPem: csr.csrPem, service: 'ga' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_KIND');
  });

  it('refuses a service token at /v1/join-gateway, also re-wrapped as a gateway token (TOKEN_WRONG_KIND)', async () => {
    const token = await createJoinToken(cp, dir.path, 'db');
    assertError(await joinGateway({ token, csrPem: csr.csrPem, zone: 'a', name: 'db' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_KIND');
    const { service: _service, ...credentials } = parseJoinToken(token);
    const rewrapped = encodeGatewayToken({ ...credentials, zone: 'a', gateway: 'db' });
    assertError(await joinGateway({ token: rewrapped, csrPem: csr.csrPem, zone: 'a', name: 'db' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_KIND');
  });

  it('refuses another zone or name (TOKEN_WRONG_SERVICE), unknown secrets, bad CSRs and bad input', async () => {
    const token = await createGatewayToken(cp, dir.path, 'a', 'ga');
    assertError(await joinGateway({ token, csrPem: csr.csrPem, zone: 'c', name: 'ga' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    assertError(await joinGateway({ token, csrPem: csr.csrPem, zone: 'a', name: 'gb' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    // The zone and name in the token text are not trusted: the stored ones decide.
    const forged = encodeGatewayToken({ ...parseGatewayToken(token), zone: 'c' });
    assertError(await joinGateway({ token: forged, csrPem: csr.csrPem, zone: 'c', name: 'ga' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    const wrongSecret = encodeGatewayToken({ ...parseGatewayToken(token), secret: Buffer.alloc(32).toString('base64url') });
    assertError(await joinGateway({ token: wrongSecret, csrPem: csr.csrPem, zone: 'a', name: 'ga' }), 401, 'TRELLIS_ERR_TOKEN_UNKNOWN');
    assertError(await joinGateway({ token: 'trellis-gateway-v1.!!', csrPem: csr.csrPem, zone: 'a', name: 'ga' }), 400, 'TRELLIS_ERR_BAD_TOKEN');
    assertError(await joinGateway({ token, csrPem: makeCsr(1024).csrPem, zone: 'a', name: 'ga' }), 400, 'TRELLIS_ERR_BAD_CSR');
    assertError(await joinGateway({ token, csrPem: csr.csrPem, zone: 'A', name: 'ga' }), 400, 'TRELLIS_ERR_INVALID');
  });

  it('refuses an expired gateway token (TOKEN_EXPIRED)', async () => {
    const token = await createGatewayToken(cp, dir.path, 'a', 'ga', 60);
    nowMs += 61_000;
    assertError(await joinGateway({ token, csrPem: csr.csrPem, zone: 'a', name: 'ga' }), 401, 'TRELLIS_ERR_TOKEN_EXPIRED');
  });

  it('counts gateway joins and their refusals in /metrics', async () => {
    const metrics = (await call(cp, dir.path, 'GET', '/metrics')).text;
    assert.match(metrics, /trellis_cp_joins_total\{result="ok"\} 2/);
    assert.match(metrics, /trellis_cp_joins_total\{result="wrong_kind"\} 4/);
    assert.match(metrics, /trellis_cp_joins_total\{result="wrong_service"\} 3/);
    assert.match(metrics, /trellis_cp_joins_total\{result="token_expired"\} 1/);
    assert.match(metrics, /trellis_cp_http_requests_total\{route="\/v1\/join-gateway",status="200"\} 2/);
  });
});
