// A real control-plane process under abuse of its REST API: every admin route without a token
// or with a wrong one (a join token among them), oversized and malformed bodies, path
// traversal, oversized and non-ASCII names, and join-token replay. Each gets one error code
// and status, the refusals show in /metrics, and nothing changes in the control plane's state.
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeAdminToken, parseAdminToken, parseJoinToken } from '../../proto/tokens.js';
import { joinMesh } from '../../sidecar/join.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, startControlPlane } from '../support/mesh.js';

interface Answer {
  status: number;
  code: string | undefined;
  json: unknown;
}

/** Every admin route, with a body it would accept from an operator. */
const ADMIN_ROUTES: { method: string; path: string; body?: unknown }[] = [
  { method: 'POST', path: '/v1/tokens', body: { service: 'db' } },
  { method: 'GET', path: '/v1/policies' },
  { method: 'PUT', path: '/v1/policies/default', body: { action: 'deny' } },
  { method: 'PUT', path: '/v1/policies/rules', body: { from: '*', to: 'db', action: 'deny' } },
  { method: 'DELETE', path: '/v1/policies/rules', body: { from: '*', to: 'db' } },
  { method: 'GET', path: '/v1/services' },
  { method: 'GET', path: '/v1/gateways' },
];

describe('abuse of the control plane\'s REST API', () => {
  let cp: ControlPlaneProcess;
  let caPem: string;
  let adminToken: string;

  before(async () => {
    cp = await startControlPlane();
    caPem = await readFile(join(cp.dataDir, 'ca.crt'), 'utf8');
    adminToken = (await readFile(cp.adminTokenFile, 'utf8')).trim();
    // The CA writes its ledger of leaves a moment after its first leaf (the control plane's
    // own): wait for it, so the data directory holds still while the tests look at it.
    await eventually(async () => (await readdir(cp.dataDir)).includes('ca-leaves.json'), 'the CA ledger written');
  });

  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  /** One request; `body` is sent as JSON unless it is already a Buffer or a string. */
  function call(method: string, path: string, options: { body?: unknown; authorization?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const url = new URL(cp.url);
    const payload = options.body === undefined ? undefined : Buffer.isBuffer(options.body) || typeof options.body === 'string' ? Buffer.from(options.body) : Buffer.from(JSON.stringify(options.body));
    const headers: Record<string, string> = { ...options.headers };
    if (options.authorization !== undefined) headers['authorization'] = options.authorization;
    // A length always: Node's client sends DELETE bodies without one (nor chunked) otherwise.
    if (payload !== undefined) Object.assign(headers, { 'content-type': 'application/json', 'content-length': String(payload.length) });
    return new Promise((resolve, reject) => {
      // `path` goes out as written: no client-side normalisation of `..` or escapes.
      const req = https.request({ host: url.hostname, port: url.port, method, path, headers, ca: caPem }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text) as unknown;
          } catch {
            json = text;
          }
          const code = (json as { error?: { code?: string } } | undefined)?.error?.code;
          resolve({ status: res.statusCode ?? 0, code, json });
        });
      });
      req.on('error', reject);
      req.end(payload);
    });
  }

  const admin = (method: string, path: string, body?: unknown): Promise<Answer> => call(method, path, { body, authorization: `Bearer ${adminToken}` });

  async function metric(name: string, labels: Record<string, string>): Promise<number> {
    const text = (await call('GET', '/metrics')).json as string;
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([key, value]) => l.includes(`${key}="${value}"`)));
    return Number(line?.split(' ').at(-1) ?? 0);
  }

  /** What an admin sees of the state: policies (with their version), services and gateways. */
  async function state(): Promise<unknown[]> {
    return Promise.all(['/v1/policies', '/v1/services', '/v1/gateways'].map(async (path) => (await admin('GET', path)).json));
  }

  it('refuses every admin route without a token, or with a wrong one (a join or gateway token among them), with 401, and changes nothing', async () => {
    const joinToken = await createToken(cp, 'db');
    const gatewayToken = ((await admin('POST', '/v1/tokens', { gateway: 'ga', zone: 'east' })).json as { token: string }).token;
    const parsed = parseAdminToken(adminToken);
    const wrongSecret = encodeAdminToken({ ...parsed, secret: Buffer.alloc(32, 1).toString('base64url') });
    const unknownId = encodeAdminToken({ ...parsed, id: 'a'.repeat(parsed.id.length) });
    const authorizations: (string | undefined)[] = [
      undefined,
      '',
      'Bearer',
      'Bearer garbage',
      `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`,
      `Bearer ${wrongSecret}`,
      `Bearer ${unknownId}`,
      `Bearer ${joinToken}`,
      `Bearer ${gatewayToken}`,
      `Bearer ${adminToken}x`,
      `Bearer ${adminToken} ${adminToken}`,
    ];
    const stateBefore = await state();
    let refused = 0;
    for (const route of ADMIN_ROUTES) {
      const refusedBefore = await metric('trellis_cp_http_requests_total', { route: route.path, status: '401' });
      for (const authorization of authorizations) {
        const answer = await call(route.method, route.path, { body: route.body, authorization });
        assert.equal(answer.status, 401, `${route.method} ${route.path} with ${String(authorization)}`);
        assert.equal(answer.code, 'TRELLIS_ERR_UNAUTHORIZED');
        refused += 1;
      }
      assert.equal(await metric('trellis_cp_http_requests_total', { route: route.path, status: '401' }), refusedBefore + authorizations.length);
    }
    assert.equal(refused, ADMIN_ROUTES.length * authorizations.length);
    assert.deepEqual(await state(), stateBefore, 'no refused request changed anything');
  });

  it('refuses a body over 64 KiB with 413 before reading it, and asks for the admin token before any body', async () => {
    const big = Buffer.alloc(64 * 1024 + 1, 0x20);
    const tooLarge = await admin('POST', '/v1/tokens', big);
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.code, 'TRELLIS_ERR_BODY_TOO_LARGE');
    // A declared length beyond the limit is refused as declared: nothing is buffered first.
    const declared = await call('POST', '/v1/join', { body: big });
    assert.equal(declared.status, 413);
    assert.equal(declared.code, 'TRELLIS_ERR_BODY_TOO_LARGE');
    // Without a token, an admin route never reads the body at all.
    const anonymous = await call('PUT', '/v1/policies/rules', { body: big });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.code, 'TRELLIS_ERR_UNAUTHORIZED');
    assert.equal(await metric('trellis_cp_http_requests_total', { route: '/v1/join', status: '413' }), 1, 'the refused join is counted');
  });

  it('refuses malformed bodies with 400 TRELLIS_ERR_INVALID naming no accepted state', async () => {
    const stateBefore = await state();
    const bodies: unknown[] = [
      '{"service": "db"',
      'not json at all',
      '[]',
      '42',
      'null',
      '"db"',
      { service: 5 },
      { service: ['db'] },
      { service: { $ne: null } },
      { service: 'db', ttlSeconds: -1 },
      { service: 'db', ttlSeconds: 1.5 },
      { service: 'db', ttlSeconds: 31_536_001 },
      '{"service": "db", "ttlSeconds": 1e400}',
      { gateway: 'ga' },
      { service: 'db', gateway: 'ga', zone: 'east' },
      `${'['.repeat(5000)}${']'.repeat(5000)}`,
    ];
    for (const body of bodies) {
      const answer = await admin('POST', '/v1/tokens', body);
      assert.equal(answer.status, 400, `POST /v1/tokens ${typeof body === 'string' ? body.slice(0, 40) : JSON.stringify(body)}`);
      assert.equal(answer.code, 'TRELLIS_ERR_INVALID');
    }
    for (const body of [{ action: 'maybe' }, { action: ['deny'] }, {}]) {
      const answer = await admin('PUT', '/v1/policies/default', body);
      assert.equal(answer.status, 400);
      assert.equal(answer.code, 'TRELLIS_ERR_INVALID');
    }
    for (const body of [{}, { token: 5, csrPem: 'x', service: 'db' }, { token: 'trellis-join-v1.x', csrPem: '', service: 'db' }]) {
      const answer = await call('POST', '/v1/join', { body });
      assert.equal(answer.status, 400);
      assert.equal(answer.code, 'TRELLIS_ERR_INVALID');
    }
    const garbageToken = await call('POST', '/v1/join', { body: { token: 'trellis-join-v1.!!!', csrPem: (await csr()).csrPem, service: 'db' } });
    assert.equal(garbageToken.status, 400);
    assert.equal(garbageToken.code, 'TRELLIS_ERR_BAD_TOKEN');
    assert.deepEqual(await state(), stateBefore);
  });

  it('resolves dot segments before routing (admin routes still need the token) and never reaches a file', async () => {
    const filesBefore = (await readdir(cp.dataDir, { recursive: true })).sort();
    for (const path of ['/v1/trust-bundle/../../ca.key', '/../ca.key', '/v1/%2e%2e/%2e%2e/ca.key', '/v1/..%2fca.key', '/v1/trust-bundle%2f..%2f..%2fca.key', '//ca.key', '/v1/./trust-bundle/..']) {
      const answer = await call('GET', path);
      assert.equal(answer.status, 404, path);
      assert.equal(answer.code, 'TRELLIS_ERR_NOT_FOUND');
    }
    // `/v1/x/../services` is `/v1/services`, an admin route: without the token it is refused.
    for (const path of ['/v1/x/../services', '/v1/%2e%2e/v1/services']) {
      const answer = await call('GET', path);
      assert.equal(answer.status, 401, path);
      assert.equal(answer.code, 'TRELLIS_ERR_UNAUTHORIZED');
    }
    const traversing = ['../../etc/passwd', '..', 'db/../../x', 'db%2f..', '/db', 'db\\..\\x'];
    for (const service of traversing) {
      const token = await admin('POST', '/v1/tokens', { service });
      assert.equal(token.status, 400, service);
      assert.equal(token.code, 'TRELLIS_ERR_INVALID');
      const rule = await admin('PUT', '/v1/policies/rules', { from: service, to: 'db', action: 'allow' });
      assert.equal(rule.code, 'TRELLIS_ERR_INVALID');
      const gateway = await admin('POST', '/v1/tokens', { gateway: service, zone: 'east' });
      assert.equal(gateway.code, 'TRELLIS_ERR_INVALID');
    }
    assert.deepEqual((await readdir(cp.dataDir, { recursive: true })).sort(), filesBefore, 'no file appeared or went');
  });

  it('refuses oversized and non-ASCII names with 400 TRELLIS_ERR_INVALID', async () => {
    const names = ['a'.repeat(64), 'a'.repeat(60_000), 'dé', 'ｄｂ', 'db\u0000', 'db\n', 'DB', 'd b', '-db', 'db-', '', 'д', '\u{1F600}', 'db\u200b'];
    const { csrPem } = await csr();
    const joinToken = await createToken(cp, 'db');
    for (const name of names) {
      for (const [method, path, body] of [
        ['POST', '/v1/tokens', { service: name }],
        ['POST', '/v1/tokens', { gateway: 'ga', zone: name }],
        ['PUT', '/v1/policies/rules', { from: 'web', to: name, action: 'deny' }],
        ['DELETE', '/v1/policies/rules', { from: name, to: 'db' }],
      ] as const) {
        const answer = await admin(method, path, body);
        assert.equal(answer.status, 400, `${method} ${path} ${JSON.stringify(name).slice(0, 20)}`);
        assert.equal(answer.code, 'TRELLIS_ERR_INVALID');
      }
      const joined = await call('POST', '/v1/join', { body: { token: joinToken, csrPem, service: name } });
      assert.equal(joined.status, 400);
      assert.equal(joined.code, 'TRELLIS_ERR_INVALID');
    }
  });

  it('join-token replay: a join token joins any number of instances until it expires; a replayed request only certifies the key of its CSR', async () => {
    const joinToken = await createToken(cp, 'db', '3s');
    const { csrPem, publicKeyPem } = await csr();
    const first = await call('POST', '/v1/join', { body: { token: joinToken, csrPem, service: 'db' } });
    // The same request again, byte for byte, as an eavesdropper on a broken TLS would replay it.
    const replayed = await call('POST', '/v1/join', { body: { token: joinToken, csrPem, service: 'db' } });
    assert.equal(first.status, 200);
    assert.equal(replayed.status, 200, 'a join token is not single-use: PROTOCOL.md, "Tokens"');
    const ids = [first, replayed].map((answer) => (answer.json as { sidecarId: string }).sidecarId);
    assert.notEqual(ids[0], ids[1], 'every join is a new sidecar');
    for (const answer of [first, replayed]) {
      const cert = new X509Certificate((answer.json as { certPem: string }).certPem);
      assert.equal(cert.publicKey.export({ type: 'spki', format: 'pem' }).toString(), createPublicKey(publicKeyPem).export({ type: 'spki', format: 'pem' }).toString(), 'the certificate is for the CSR\'s key, which a replayer does not hold');
      assert.equal(cert.subjectAltName, 'URI:spiffe://trellis.local/svc/db');
    }
    const otherService = await call('POST', '/v1/join', { body: { token: joinToken, csrPem, service: 'payments' } });
    assert.equal(otherService.status, 403);
    assert.equal(otherService.code, 'TRELLIS_ERR_TOKEN_WRONG_SERVICE');
    const expiredBefore = await metric('trellis_cp_joins_total', { result: 'token_expired' });
    // The token's own lifetime: replays after it end.
    await new Promise((resolve) => setTimeout(resolve, 3200));
    const late = await call('POST', '/v1/join', { body: { token: joinToken, csrPem, service: 'db' } });
    assert.equal(late.status, 401);
    assert.equal(late.code, 'TRELLIS_ERR_TOKEN_EXPIRED');
    assert.equal(await metric('trellis_cp_joins_total', { result: 'token_expired' }), expiredBefore + 1);
  });

  it('a sidecar refuses a control plane whose CA is not the one its token names (no trust on first use), before sending its token', async () => {
    const raw = await createToken(cp, 'db');
    const token = parseJoinToken(raw);
    const joinsBefore = await metric('trellis_cp_joins_total', { result: 'ok' });
    // What a sidecar sees when something else answers at the control plane's address.
    await assert.rejects(joinMesh([cp.url], { ...token, caFingerprint: 'ab'.repeat(32) }, raw, 'db'), { code: 'TRELLIS_ERR_CA_MISMATCH' });
    assert.equal(await metric('trellis_cp_joins_total', { result: 'ok' }), joinsBefore, 'the token never reached the join route');
  });

  /** A fresh key's CSR, as a sidecar makes it. */
  async function csr(): Promise<{ csrPem: string; publicKeyPem: string }> {
    const keys = await generateSidecarKeyPair();
    return { csrPem: await createCsrPem(keys.privateKeyPem, 'whatever'), publicKeyPem: keys.privateKeyPem };
  }
});
