// Identity and authorization through real processes: policy, mTLS on the link listener, tokens.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseJoinToken } from '../../proto/tokens.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startEchoApp } from '../support/apps.js';
import { makeForeignIdentity } from '../support/foreign-ca.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, setPolicy, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

describe('security', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let vault: SidecarProcess;
  let caller: SidecarProcess;

  before(async () => {
    [cp, app] = await Promise.all([startControlPlane(), startEchoApp()]);
    vault = await startSidecar({ service: 'vault', token: await createToken(cp, 'vault'), cp, app: app.address });
    caller = await startSidecar({ service: 'caller', token: await createToken(cp, 'caller'), cp, upstreams: ['vault'] });
  });

  after(async () => {
    await Promise.all([caller?.proc.stop(), vault?.proc.stop()]);
    await cp?.proc.stop();
    await app?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('policy deny closes the caller connection before the app sees it, and counts the denial', async () => {
    const port = caller.upstreams.get('vault')?.port ?? 0;
    // Vault's endpoint turns healthy only once its first health report is in, which may come
    // after the caller is ready; until then the caller refuses at once (no healthy endpoint).
    await eventually(async () => (await sidecarStatus(caller)).upstreams.some((u) => u.service === 'vault' && u.endpoints.length > 0), 'the caller to know a healthy vault endpoint');
    const allowed = await connect(port);
    const echoed = readAll(allowed);
    allowed.end('hello');
    assert.equal((await echoed).toString(), 'hello', 'allowed by default');
    const acceptedBefore = app.accepted;
    const versionBefore = (await sidecarStatus(vault)).configVersion;

    await setPolicy(cp, ['deny', '--from', 'caller', '--to', 'vault']);
    await eventually(async () => (await sidecarStatus(vault)).configVersion > versionBefore, 'vault sidecar to get the policy');

    const denied = await connect(port);
    let receivedBytes = 0;
    let errorCode: string | undefined;
    denied.on('data', (chunk: Buffer) => (receivedBytes += chunk.length));
    denied.on('error', (error: NodeJS.ErrnoException) => (errorCode = error.code));
    const closed = new Promise((resolve) => denied.once('close', resolve));
    denied.write('secret');
    await closed;
    assert.equal(receivedBytes, 0);
    assert.equal(errorCode, 'ECONNRESET', 'the caller sees a reset, not a clean end');
    assert.equal(app.accepted, acceptedBefore, 'the app never saw the denied connection');
    assert.equal(await scrapeMetric(vault, 'trellis_sidecar_policy_denials_total', { source: 'caller' }), 1);

    await setPolicy(cp, ['allow', '--from', 'caller', '--to', 'vault']);
  });

  for (const kind of ['no certificate', 'a certificate from another CA'] as const) {
    it(`the link listener refuses a TLS client with ${kind}`, async () => {
      const [host, port] = vault.linkAddress.split(':');
      const identity = kind === 'no certificate' ? {} : await makeForeignIdentity('vault');
      const socket = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ...identity });
      let received = 0;
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      const failure = new Promise<string>((resolve) => {
        socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
        socket.once('close', () => resolve('closed'));
      });
      // TLS 1.3 finishes the client's side of the handshake before the server checks the
      // client certificate, so send a frame's worth of bytes and expect the alert instead.
      socket.once('secureConnect', () => socket.write(Buffer.alloc(16)));
      const outcome = await failure;
      assert.equal(received, 0, 'no frame reached a refused client');
      assert.match(outcome, /CERTIFICATE|ALERT|closed|ECONNRESET/);
      socket.destroy();
    });
  }

  it('the link listener speaks TLS 1.3 and picks AES-128-GCM even when the client prefers AES-256', async () => {
    const [host, port] = vault.linkAddress.split(':');
    // Node's default client list puts TLS_AES_256_GCM_SHA384 first; the listener's order wins.
    const socket = tls.connect({ host, port: Number(port), rejectUnauthorized: false, ...(await makeForeignIdentity('vault')) });
    socket.on('error', () => undefined); // the foreign certificate is refused right after
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    assert.equal(socket.getProtocol(), 'TLSv1.3');
    assert.equal(socket.getCipher().name, 'TLS_AES_128_GCM_SHA256');
    socket.destroy();
  });

  it('the admin port changes nothing and shows neither the sidecar key nor its join token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'trellis-sc-'));
    const token = await createToken(cp, 'ledger');
    const ledger = await startSidecar({ service: 'ledger', token, cp, dataDir: join(dir, 'state') });
    try {
      const keyLines = (await readFile(join(dir, 'state', 'sidecar.key'), 'utf8')).split('\n').filter((line) => line.length > 40 && !line.startsWith('-----'));
      const { secret } = parseJoinToken(token);
      assert.ok(keyLines.length > 0 && secret.length > 20);
      for (const path of ['/ready', '/metrics', '/status']) {
        const response = await fetch(`${ledger.adminUrl}${path}`);
        assert.equal(response.status, 200, path);
        const body = await response.text();
        assert.ok(!body.includes('PRIVATE KEY') && keyLines.every((line) => !body.includes(line)), `${path} shows the key`);
        assert.ok(!body.includes(secret), `${path} shows the join token`);
      }
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        for (const path of ['/ready', '/status', '/drain']) assert.equal((await fetch(`${ledger.adminUrl}${path}`, { method, body: '{}' })).status, 405, `${method} ${path}`);
      }
      assert.equal((await fetch(`${ledger.adminUrl}/config`)).status, 404);
      assert.equal((await sidecarStatus(ledger)).configVersion > 0, true, 'still serving after the refused calls');
    } finally {
      await ledger.proc.stop();
      await removeDirs(dir);
    }
  });

  it('refuses a malformed token, an expired token and a token for another service', async () => {
    const dataDir = join(await mkdtemp(join(tmpdir(), 'trellis-sc-')), 'state');
    const run = (token: string, service: string) =>
      runTrellis(['sidecar', '--service', service, '--token', token, '--control-plane', cp.url, '--listen', '127.0.0.1:0', '--data-dir', dataDir]);

    // The three attempts are independent: they run at once, the expired one after its token's lifetime.
    const [malformed, expired, wrongService] = await Promise.all([
      run('trellis-join-v1.not-a-token', 'web'),
      createToken(cp, 'web', '1s').then(async (expiredToken) => {
        await new Promise((resolve) => setTimeout(resolve, 1200)); // the token's own lifetime
        return run(expiredToken, 'web');
      }),
      createToken(cp, 'web').then((token) => run(token, 'admin')),
    ]);
    assert.equal(malformed.code, 1);
    assert.match(malformed.stderr, /TRELLIS_ERR_BAD_TOKEN/);

    assert.equal(expired.code, 1);
    assert.match(expired.stderr, /TRELLIS_ERR_TOKEN_EXPIRED/);

    assert.equal(wrongService.code, 1);
    assert.match(wrongService.stderr, /token is for service "web", not "admin"/);

    for (const result of [malformed, expired, wrongService]) assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.equal(existsSync(dataDir), false, 'nothing written on disk');
    await removeDirs(join(dataDir, '..'));
  });
});
