// Control-plane replicas on one real etcd: they share the CA and the admin token (encrypted in
// etcd with a key file every replica holds), see each other's changes through watches, and
// keep the mesh going when one of them, or etcd itself, is killed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

const LEASE_TTL = '2s';

async function roundTrip(port: number, text: string): Promise<string> {
  const socket = await connect(port);
  const reply = readAll(socket);
  socket.end(text);
  return (await reply).toString();
}

/** Whether a new connection through `port` is refused by the mesh (closed without an echo). */
async function refused(port: number): Promise<boolean> {
  try {
    return (await roundTrip(port, 'ping')) !== 'ping';
  } catch {
    return true;
  }
}

interface SidecarStatus {
  controlPlaneConnected: boolean;
  configVersion: number;
}

async function status(sidecar: SidecarProcess): Promise<SidecarStatus> {
  return (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as SidecarStatus;
}

/**
 * A stream that stays open across a fault: writes `chunks` random chunks, one each time the
 * previous one has come back, and `finish()` compares what came back with what was sent.
 */
class LongStream {
  readonly #socket: Socket;
  readonly #sent: Buffer[] = [];
  readonly #received: Buffer[] = [];
  #receivedBytes = 0;
  #sentBytes = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#received.push(chunk);
      this.#receivedBytes += chunk.length;
      socket.emit('progress');
    });
  }

  static async open(port: number): Promise<LongStream> {
    return new LongStream(await connect(port));
  }

  /** Sends one chunk and waits until the echo has brought it back. */
  async step(bytes = 64 * 1024): Promise<void> {
    const chunk = randomBytes(bytes);
    this.#sent.push(chunk);
    this.#sentBytes += chunk.length;
    this.#socket.write(chunk);
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.#receivedBytes < this.#sentBytes) return;
        this.#socket.off('progress', check);
        this.#socket.off('close', onClose);
        resolve();
      };
      const onClose = (): void => reject(new Error('the long stream was closed'));
      this.#socket.on('progress', check);
      this.#socket.once('close', onClose);
      check();
    });
  }

  finish(): { sent: string; received: string; bytes: number } {
    this.#socket.end();
    return { sent: sha256(Buffer.concat(this.#sent)), received: sha256(Buffer.concat(this.#received)), bytes: this.#sentBytes };
  }
}

describe('control-plane replicas on etcd', () => {
  let etcd: TestEtcd;
  let keyDir: string;
  let keyFile: string;
  let etcdArgs: string[];
  let cp1: ControlPlaneProcess;
  let cp2: ControlPlaneProcess;
  let app: TestApp;
  let echo: SidecarProcess;
  let client: SidecarProcess;
  const extra: SidecarProcess[] = [];

  before(async () => {
    etcd = await startEtcd();
    keyDir = await mkdtemp(join(tmpdir(), 'trellis-key-'));
    keyFile = join(keyDir, 'etcd.key');
    await writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    etcdArgs = ['--store', 'etcd', '--etcd', etcd.url, '--etcd-encryption-key-file', keyFile];
    cp1 = await startControlPlane({ leaseTtl: LEASE_TTL, extra: etcdArgs });
    cp2 = await startControlPlane({ leaseTtl: LEASE_TTL, extra: etcdArgs });
    app = await startEchoApp();
  });

  after(async () => {
    await Promise.all([client, echo, ...extra].map((s) => s?.proc.stop()));
    await Promise.all([cp1?.proc.stop(), cp2?.proc.stop()]);
    await app?.close();
    await etcd?.stop();
    await removeDirs(cp1?.dataDir ?? '', cp2?.dataDir ?? '', keyDir ?? '');
  });

  it('serve one CA and one admin token, and keep no secret in etcd in plaintext', async () => {
    assert.equal(await readFile(join(cp2.dataDir, 'ca.crt'), 'utf8'), await readFile(join(cp1.dataDir, 'ca.crt'), 'utf8'));
    const adminToken = await readFile(cp1.adminTokenFile, 'utf8');
    assert.equal(await readFile(cp2.adminTokenFile, 'utf8'), adminToken);
    const caKey = await readFile(join(cp1.dataDir, 'ca.key'), 'utf8');
    // A token made at one replica joins at the other.
    const token = await createToken(cp1, 'echo');
    echo = await startSidecar({ service: 'echo', token, cp: cp2, app: app.address, extra: ['--control-plane', cp1.url] });

    const raw = new Etcd3({ hosts: etcd.url });
    try {
      const all = await raw.getAll().prefix('/trellis/').strings();
      assert.ok(Object.keys(all).some((key) => key.startsWith('/trellis/secrets/')), 'the shared secrets are in etcd');
      const keyBody = caKey.split('\n').filter((line) => line !== '' && !line.startsWith('-----'))[1] ?? '';
      const adminSecret = adminToken.trim().split('.').at(-1) ?? '';
      assert.ok(keyBody.length > 20 && adminSecret.length > 10);
      for (const [key, value] of Object.entries(all)) {
        assert.ok(!value.includes('PRIVATE KEY') && !value.includes(keyBody), `${key} holds the CA key in plaintext`);
        assert.ok(!value.includes(adminSecret), `${key} holds the admin token in plaintext`);
      }
    } finally {
      raw.close();
    }
  });

  it('refuse to start with a wrong key, a key file others can read, or etcd flags without --store etcd', async () => {
    const wrongKey = join(keyDir, 'wrong.key');
    await writeFile(wrongKey, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const looseKey = join(keyDir, 'loose.key');
    await writeFile(looseKey, await readFile(keyFile));
    await chmod(looseKey, 0o644);
    const dataDir = await mkdtemp(join(tmpdir(), 'trellis-cp-'));
    try {
      for (const [file, why] of [
        [wrongKey, 'a different key'],
        [looseKey, 'mode 0644'],
      ] as const) {
        const result = await runTrellis(['control-plane', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--store', 'etcd', '--etcd', etcd.url, '--etcd-encryption-key-file', file]);
        assert.equal(result.code, 1, why);
        assert.ok(result.stderr.includes('[TRELLIS_ERR_ENCRYPTION_KEY]'), `${why}: ${result.stderr}`);
      }
      const usage = await runTrellis(['control-plane', '--data-dir', dataDir, '--etcd', etcd.url]);
      assert.equal(usage.code, 2);
      assert.ok(usage.stderr.includes('[TRELLIS_ERR_USAGE]'), usage.stderr);
    } finally {
      await removeDirs(dataDir);
    }
  });

  it('keep the mesh going when one is killed: sidecars move, the other issues tokens and pushes policy', async () => {
    client = await startSidecar({ service: 'client', token: await createToken(cp1, 'client'), cp: cp1, upstreams: ['echo'], extra: ['--control-plane', cp2.url] });
    const port = client.upstreams.get('echo')?.port ?? 0;
    await eventually(async () => (await roundTrip(port, 'hello')) === 'hello', 'traffic through the mesh');
    const stream = await LongStream.open(port);
    for (let i = 0; i < 8; i++) await stream.step();

    await cp1.proc.stop('SIGKILL');
    for (let i = 0; i < 8; i++) await stream.step();
    await eventually(async () => (await status(client)).controlPlaneConnected && (await status(echo)).controlPlaneConnected, 'both sidecars on the surviving replica');
    // Longer than the lease: the endpoints live on because their sidecars registered again.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const services = (await adminGet(cp2, '/v1/services')) as { services: Record<string, Array<{ sidecarId: string; connected: boolean }>> };
    assert.equal(services.services['echo']?.length, 1, JSON.stringify(services));
    assert.equal(services.services['client']?.length, 1, JSON.stringify(services));
    assert.equal(await roundTrip(port, 'after the failover'), 'after the failover');
    for (let i = 0; i < 8; i++) await stream.step();

    // The survivor issues tokens that join, and pushes policy that takes effect.
    extra.push(await startSidecar({ service: 'echo', token: await createToken(cp2, 'echo'), cp: cp2, app: app.address }));
    await setPolicy(cp2, ['deny', '--from', 'client', '--to', 'echo']);
    await eventually(() => refused(port), 'the deny to reach the client and echo sidecars');
    await setPolicy(cp2, ['allow', '--from', 'client', '--to', 'echo']);
    await eventually(async () => !(await refused(port)), 'the allow to come back');
    const result = stream.finish();
    assert.equal(result.received, result.sent, `the stream open across the kill arrived whole (${result.bytes} bytes)`);
  });

  it('keep their state when etcd is killed and restarted, and their watches resume', async () => {
    cp1 = await startControlPlane({ dataDir: cp1.dataDir, leaseTtl: LEASE_TTL, extra: etcdArgs });
    const port = client.upstreams.get('echo')?.port ?? 0;
    // Rules to echo reach echo's sidecars (scoped push): their version moves.
    const before = (await status(echo)).configVersion;
    await etcd.kill('SIGKILL');
    assert.equal(await roundTrip(port, 'while etcd is down'), 'while etcd is down');
    await etcd.restart();
    // A change made at one replica reaches sidecars connected to either.
    await setPolicy(cp1, ['deny', '--from', 'client', '--to', 'echo']);
    await eventually(() => refused(port), 'the deny made at the restarted replica to reach the sidecars');
    assert.ok((await status(echo)).configVersion > before);
    const shown = await runTrellis(['policy', 'show', '--control-plane', cp2.url, '--admin-token-file', cp2.adminTokenFile]);
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual((JSON.parse(shown.stdout) as { rules: unknown[] }).rules, [{ from: 'client', to: 'echo', action: 'deny' }]);
    // Tokens made before the outage still join.
    const token = await createToken(cp2, 'echo');
    extra.push(await startSidecar({ service: 'echo', token, cp: cp1, app: app.address }));
  });

  it('keep traffic flowing byte-exact with every replica and etcd down, and catch up when they return', async () => {
    const port = client.upstreams.get('echo')?.port ?? 0;
    await setPolicy(cp2, ['remove', '--from', 'client', '--to', 'echo']);
    await eventually(async () => !(await refused(port)), 'the rule removal to reach the sidecars');
    const stream = await LongStream.open(port);
    for (let i = 0; i < 4; i++) await stream.step();
    await Promise.all([cp1.proc.stop('SIGKILL'), cp2.proc.stop('SIGKILL'), etcd.kill('SIGKILL')]);
    for (let i = 0; i < 8; i++) await stream.step();
    assert.equal(await roundTrip(port, 'with no control plane at all'), 'with no control plane at all');
    await eventually(async () => !(await status(client)).controlPlaneConnected, 'the client sidecar to notice');

    await etcd.restart();
    cp1 = await startControlPlane({ dataDir: cp1.dataDir, listen: new URL(cp1.url).host, leaseTtl: LEASE_TTL, extra: etcdArgs });
    cp2 = await startControlPlane({ dataDir: cp2.dataDir, listen: new URL(cp2.url).host, leaseTtl: LEASE_TTL, extra: etcdArgs });
    await eventually(async () => (await status(client)).controlPlaneConnected && (await status(echo)).controlPlaneConnected, 'sidecars to reconnect by themselves');
    await setPolicy(cp1, ['deny', '--from', 'client', '--to', 'echo']);
    await eventually(() => refused(port), 'a deny made after the outage to reach the sidecars');
    for (let i = 0; i < 4; i++) await stream.step();
    const result = stream.finish();
    assert.equal(result.received, result.sent, `the stream open across the outage arrived whole (${result.bytes} bytes)`);
  });
});

/** GET `path` of the admin API of `cp`, trusting its CA, with its admin token. */
async function adminGet(cp: ControlPlaneProcess, path: string): Promise<unknown> {
  const ca = await readFile(join(cp.dataDir, 'ca.crt'), 'utf8');
  const token = (await readFile(cp.adminTokenFile, 'utf8')).trim();
  return new Promise((resolve, reject) => {
    const req = httpsGet(new URL(path, cp.url), { ca, headers: { authorization: `Bearer ${token}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text) as unknown);
      });
    });
    req.on('error', reject);
  });
}
