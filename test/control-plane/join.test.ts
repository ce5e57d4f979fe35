import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ControlPlane } from '../../control-plane/index.js';
import { encodeJoinToken, parseJoinToken } from '../../proto/tokens.js';
import { assertError, call, caPemOf, createJoinToken, makeCsr, startTestControlPlane, tempDir } from './helpers.js';

describe('POST /v1/join', () => {
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

  const join = (body: unknown) => call(cp, dir.path, 'POST', '/v1/join', { body });

  it('signs a CSR: CN = sidecar id, URI SAN = the service, chained to the CA', async () => {
    const token = await createJoinToken(cp, dir.path, 'db');
    const answer = await join({ token, csrPem: csr.csrPem, service: 'db' });
    assert.equal(answer.status, 200, answer.text);
    const body = answer.json as { sidecarId: string; spiffeId: string; certPem: string; caPems: string[]; trustDomain: string; expiresAt: number };
    assert.match(body.sidecarId, /^sc-[0-9a-f]{12}$/);
    assert.equal(body.spiffeId, 'spiffe://trellis.local/svc/db');
    assert.equal(body.trustDomain, 'trellis.local');
    assert.deepEqual(body.caPems, [await caPemOf(dir.path)]);
    const cert = new X509Certificate(body.certPem);
    const ca = new X509Certificate(await caPemOf(dir.path));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkIssued(ca));
    assert.equal(cert.subjectAltName, 'URI:spiffe://trellis.local/svc/db');
    assert.match(cert.subject, new RegExp(`CN=${body.sidecarId}`));
    assert.equal(cert.ca, false);
    assert.equal(Date.parse(cert.validTo), Math.floor(body.expiresAt / 1000) * 1000);
    assert.ok(Math.abs(body.expiresAt - (nowMs + 60 * 60 * 1000)) < 1000);
    assert.ok(cert.keyUsage?.includes('1.3.6.1.5.5.7.3.1') && cert.keyUsage.includes('1.3.6.1.5.5.7.3.2'));

    // Join tokens are reusable until they expire: a second instance of the service joins too.
    const second = await join({ token, csrPem: makeCsr().csrPem, service: 'db' });
    assert.equal(second.status, 200, second.text);
    assert.notEqual((second.json as { sidecarId: string }).sidecarId, body.sidecarId);
  });

  it('refuses malformed, unknown, wrong-secret, expired and wrong-service tokens with their codes', async () => {
    const token = await createJoinToken(cp, dir.path, 'db', 60);
    assertError(await join({ token: 'trellis-join-v1.!!', csrPem: csr.csrPem, service: 'db' }), 400, 'TRELLIS_ERR_BAD_TOKEN');
    const parsed = parseJoinToken(token);
    assertError(await join({ token: encodeJoinToken({ ...parsed, id: 'ffffffffffffffff' }), csrPem: csr.csrPem, service: 'db' }), 401, 'TRELLIS_ERR_TOKEN_UNKNOWN');
    const wrongSecret = encodeJoinToken({ ...parsed, secret: Buffer.alloc(32).toString('base64url') });
    assertError(await join({ token: wrongSecret, csrPem: csr.csrPem, service: 'db' }), 401, 'TRELLIS_ERR_TOKEN_UNKNOWN');
    // The service in the token text is not trusted either: the stored one decides.
    const message = assertError(await join({ token, csrPem: csr.csrPem, service: 'web' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    assert.equal(message, 'token is for service db, not web');
    nowMs += 61_000;
    const expired = assertError(await join({ token, csrPem: csr.csrPem, service: 'db' }), 401, 'TRELLIS_ERR_TOKEN_EXPIRED');
    assert.match(expired, new RegExp(new Date(parsed.expiresAt).toISOString()));
  });

  it('refuses bad CSRs and bad input', async () => {
    const token = await createJoinToken(cp, dir.path, 'db');
    assertError(await join({ token, csrPem: 'not a csr', service: 'db' }), 400, 'TRELLIS_ERR_BAD_CSR');
    const weak = assertError(await join({ token, csrPem: makeCsr(1024).csrPem, service: 'db' }), 400, 'TRELLIS_ERR_BAD_CSR');
    assert.match(weak, /1024-bit/);
    // Flip a byte inside the signature: the CSR still parses but no longer verifies.
    const der = Buffer.from(csr.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s/g, ''), 'base64');
    der[der.length - 10] = (der[der.length - 10] ?? 0) ^ 0xff;
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE REQUEST-----\n`;
    assertError(await join({ token, csrPem: tampered, service: 'db' }), 400, 'TRELLIS_ERR_BAD_CSR');
    assertError(await join({ token, csrPem: csr.csrPem, service: 'Bad_Name' }), 400, 'TRELLIS_ERR_INVALID');
    assertError(await call(cp, dir.path, 'POST', '/v1/join', { rawBody: '{"token":' }), 400, 'TRELLIS_ERR_INVALID');
    assertError(await call(cp, dir.path, 'POST', '/v1/join', { rawBody: 'x'.repeat(70 * 1024) }), 413, 'TRELLIS_ERR_BODY_TOO_LARGE');
  });

  it('counts joins by result in /metrics', async () => {
    const metrics = await call(cp, dir.path, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.text, /trellis_cp_joins_total\{result="ok"\} 2/);
    assert.match(metrics.text, /trellis_cp_joins_total\{result="token_expired"\} 1/);
    assert.match(metrics.text, /trellis_cp_certs_issued_total\{reason="join"\} 2/);
    assert.match(metrics.text, /trellis_cp_http_requests_total\{route="\/v1\/join",status="200"\} 2/);
  });

  it('decides by the stored service and expiry, not by what the token text says', async () => {
    const parsed = parseJoinToken(await createJoinToken(cp, dir.path, 'db', 60));
    const later = nowMs + 24 * 60 * 60 * 1000;
    const claimsWeb = encodeJoinToken({ ...parsed, service: 'web', expiresAt: later });
    assertError(await join({ token: claimsWeb, csrPem: csr.csrPem, service: 'web' }), 403, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    nowMs += 61_000;
    const claimsLater = encodeJoinToken({ ...parsed, expiresAt: later });
    assertError(await join({ token: claimsLater, csrPem: csr.csrPem, service: 'db' }), 401, 'TRELLIS_ERR_TOKEN_EXPIRED');
  });
});

describe('join tokens across restarts', () => {
  it('a token issued before a restart still works after it', async () => {
    const dir = await tempDir();
    try {
      const first = await startTestControlPlane(dir.path);
      const token = await createJoinToken(first, dir.path, 'api');
      await first.close();
      const second = await startTestControlPlane(dir.path);
      try {
        const answer = await call(second, dir.path, 'POST', '/v1/join', { body: { token, csrPem: makeCsr().csrPem, service: 'api' } });
        assert.equal(answer.status, 200, answer.text);
      } finally {
        await second.close();
      }
    } finally {
      await dir.remove();
    }
  });
});
