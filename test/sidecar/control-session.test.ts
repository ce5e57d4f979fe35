// The sidecar's end of the channel against a control plane that breaks the version rules: a
// real WSS server with a mesh CA certificate plays the control plane, scripted message by
// message, so that a delta on the wrong base (which a correct control plane never sends) can be
// sent on purpose.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { issueServerCertificate, signSidecarCsr } from '../../control-plane/cert-issuer.js';
import type { ControlPlaneMessage, SidecarMessage } from '../../proto/control.js';
import { CHANNEL_VERSION, decodeSidecarMessage, encodeControlMessage } from '../../proto/control.js';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';
import { ConfigSubscriptions } from '../../sidecar/config/subscriptions.js';
import { ControlSession } from '../../sidecar/control/control-session.js';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { createCsrPem } from '../../sidecar/identity/keys.js';
import type { LeafRefusal } from '../../sidecar/identity/leaf-validity.js';
import { CertificateRenewer } from '../../sidecar/identity/renewer.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const logger = pino({ level: 'silent' });
const endpoint = (service: string, sidecarId: string) => ({ sidecarId, service, address: '127.0.0.1:7001', zone: 'z', weight: 1, healthy: true });

/** One accepted channel: the messages the sidecar sent, in order, and a way to wait for the next. */
class ScriptedPeer {
  readonly received: SidecarMessage[] = [];
  #wake: (() => void) | undefined;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      this.received.push(decodeSidecarMessage(data));
      this.#wake?.();
    });
    this.closed = new Promise((resolve) => ws.once('close', (code) => resolve(code)));
  }

  send(message: ControlPlaneMessage): void {
    this.ws.send(encodeControlMessage(message));
  }

  /** The next message (after the ones already taken with `next`). */
  async next(timeoutMs = 5000): Promise<SidecarMessage> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length === 0) {
      if (Date.now() > deadline) throw new Error('no message from the sidecar');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.received.shift()!;
  }
}

describe('control session (sidecar end of the channel)', () => {
  let testCa: TestCa;
  let server: Server;
  let wss: WebSocketServer;
  let url: string;
  let credentials: Credentials;
  const peers: ScriptedPeer[] = [];
  let onPeer: (() => void) | undefined;

  before(async () => {
    testCa = await createTestCa('trellis.local');
    const cert = await issueServerCertificate(testCa.ca, '127.0.0.1', 3_600_000);
    server = createServer({ key: cert.keyPem, cert: cert.certPem, ca: testCa.ca.caPems(), requestCert: true, rejectUnauthorized: true });
    wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => {
      peers.push(new ScriptedPeer(ws));
      onPeer?.();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    credentials = await credentialsFor(testCa.ca, 'web');
  });

  after(async () => {
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => server.close(resolve));
    await testCa.remove();
  });

  async function nextPeer(): Promise<ScriptedPeer> {
    const seen = peers.length;
    while (peers.length === seen) await new Promise<void>((resolve) => (onPeer = resolve));
    return peers[peers.length - 1]!;
  }

  it('channel 2: nacks a delta on the wrong base and applies nothing of it; subscribes on demand; ignores endpoints it does not hold', async () => {
    const config = new MeshConfig();
    const subscriptions = new ConfigSubscriptions(['api']);
    const session = new ControlSession({ urls: [url], credentials, config, logger, subscriptions, registration: { type: 'register', address: '127.0.0.1:7000', zone: 'z', weight: 1 } });
    const connected = nextPeer();
    session.start();
    const peer = await connected;
    try {
      const register = await peer.next();
      assert.equal(register.type, 'register');
      assert.equal(register.type === 'register' && register.channel, CHANNEL_VERSION);
      assert.deepEqual(register.type === 'register' && register.services, ['api']);
      assert.equal(register.type === 'register' && register.resume, undefined, 'nothing held yet: nothing to resume from');

      peer.send({ type: 'snapshot', version: 10, channel: 2, subscribed: ['api'], entries: [['endpoint/api/sc-a', endpoint('api', 'sc-a')], ['policy/default', { action: 'allow' }]] });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 10 });
      assert.equal(subscriptions.holds('api'), true);

      // Its base is 11, but the sidecar holds 10.
      peer.send({ type: 'delta', version: 12, baseVersion: 11, changes: [['endpoint/api/sc-a', null], ['policy/default', { action: 'deny' }]] });
      assert.deepEqual(await peer.next(), { type: 'nack', version: 12, haveVersion: 10 });
      assert.equal(config.version, 10);
      assert.equal(config.endpoints('api').length, 1);
      assert.equal(config.policy.allows('x', 'web'), true);

      peer.send({ type: 'snapshot', version: 12, channel: 2, subscribed: ['api'], entries: [['policy/default', { action: 'deny' }]] });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 12 });
      assert.equal(config.endpoints('api').length, 0);

      // A proxy-port destination: wanted on first use, held once a delta carries it in full.
      const ready = subscriptions.ready('other', 5000);
      subscriptions.want('other');
      assert.deepEqual(await peer.next(), { type: 'subscribe', services: ['other'] });
      peer.send({
        type: 'delta',
        version: 15,
        baseVersion: 12,
        subscribed: ['other'],
        changes: [
          ['endpoint/other/sc-o', endpoint('other', 'sc-o')],
          ['endpoint/stranger/sc-s', endpoint('stranger', 'sc-s')],
        ],
      });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 15 });
      assert.equal(await ready, true);
      assert.deepEqual(config.endpoints('other').map((e) => e.sidecarId), ['sc-o']);
      assert.deepEqual(config.endpoints('stranger'), [], 'a service it does not hold is not applied');

      subscriptions.release('other');
      assert.deepEqual(await peer.next(), { type: 'unsubscribe', services: ['other'] });
      assert.deepEqual(config.endpoints('other'), []);

      // On reconnect it says what it holds.
      const reconnected = nextPeer();
      peer.ws.terminate();
      const second = await reconnected;
      const again = await second.next();
      assert.equal(again.type === 'register' && again.resume?.version, 15);
      assert.deepEqual(again.type === 'register' && again.resume?.services, ['api']);
    } finally {
      session.close();
    }
  });

  it('releases a service reached on use once it goes unused, never an upstream', async () => {
    const config = new MeshConfig();
    const subscriptions = new ConfigSubscriptions(['api'], { idleReleaseMs: 300 });
    const session = new ControlSession({ urls: [url], credentials, config, logger, subscriptions, registration: { type: 'register', address: '127.0.0.1:7000', zone: 'z', weight: 1 } });
    const connected = nextPeer();
    session.start();
    const peer = await connected;
    try {
      assert.equal((await peer.next()).type, 'register');
      peer.send({ type: 'snapshot', version: 5, channel: 2, subscribed: ['api'], entries: [] });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 5 });
      subscriptions.want('other');
      assert.deepEqual(await peer.next(), { type: 'subscribe', services: ['other'] });
      peer.send({ type: 'delta', version: 6, baseVersion: 5, subscribed: ['other'], changes: [['endpoint/other/sc-o', endpoint('other', 'sc-o')]] });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 6 });
      assert.deepEqual(await peer.next(), { type: 'unsubscribe', services: ['other'] });
      assert.deepEqual(config.endpoints('other'), []);
      assert.deepEqual([...subscriptions.wanted], ['api']);
    } finally {
      subscriptions.close();
      session.close();
    }
  });

  it('channel 1: a control plane that does not speak channel 2 pushes everything; a gap means a reconnect, not a nack', async () => {
    const config = new MeshConfig();
    const subscriptions = new ConfigSubscriptions(['api']);
    const session = new ControlSession({ urls: [url], credentials, config, logger, subscriptions, registration: { type: 'register', address: '127.0.0.1:7000', zone: 'z', weight: 1 } });
    const connected = nextPeer();
    session.start();
    const peer = await connected;
    try {
      assert.equal((await peer.next()).type, 'register');
      peer.send({ type: 'snapshot', version: 3, entries: [['endpoint/other/sc-o', endpoint('other', 'sc-o')]] });
      assert.deepEqual(await peer.next(), { type: 'ack', version: 3 });
      assert.equal(subscriptions.holds('other'), true, 'everything is pushed, so everything is held');
      assert.equal(await subscriptions.ready('anything', 5000), true);
      const reconnected = nextPeer();
      peer.send({ type: 'delta', version: 9, baseVersion: 8, changes: [] });
      assert.equal(await peer.closed, 1000);
      assert.deepEqual(peer.received, [], 'no nack to a channel-1 control plane');
      const second = await reconnected;
      const register = await second.next();
      assert.equal(register.type === 'register' && register.resume?.version, 3);
      assert.deepEqual(register.type === 'register' && register.resume?.services, [], 'what a channel-1 control plane pushed is not claimed as held in full');
      // A channel-2 replica resumes it: from then on only what that delta names is held.
      second.send({ type: 'delta', version: 4, baseVersion: 3, channel: 2, subscribed: ['api'], changes: [['endpoint/api/sc-a', endpoint('api', 'sc-a')]] });
      assert.deepEqual(await second.next(), { type: 'ack', version: 4 });
      assert.equal(subscriptions.holds('api'), true);
      assert.equal(subscriptions.holds('other'), false);
    } finally {
      session.close();
    }
  });

  it('refuses a renewed certificate that is not valid by its own clock, keeps the current one and counts a failed renewal', async () => {
    // Control planes whose clock jumped two hours ahead, or runs two hours behind: their CA signs
    // with the same key material as a real one would, only the validity window is off.
    const caDirs: string[] = [];
    const skewedCa = async (skewMs: number) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'trellis-skewed-ca-'));
      caDirs.push(dataDir);
      return CertificateAuthority.loadOrCreate({ dataDir, trustDomain: 'trellis.local', logger, now: () => Date.now() + skewMs });
    };
    const leafFrom = async (ca: CertificateAuthority, ttlMs: number) => {
      const csrPem = await createCsrPem(credentials.current.privateKeyPem, credentials.current.sidecarId);
      return signSidecarCsr(ca, csrPem, { sidecarId: credentials.current.sidecarId, service: credentials.current.service }, ttlMs);
    };
    const ahead = await leafFrom(await skewedCa(2 * 3_600_000), 3_600_000);
    const behind = await leafFrom(await skewedCa(-2 * 3_600_000), 3_600_000);
    const good = await leafFrom(testCa.ca, 3_600_000);
    const unreadable = `-----BEGIN CERTIFICATE-----\n${Buffer.from('not a certificate').toString('base64')}\n-----END CERTIFICATE-----\n`;

    const config = new MeshConfig();
    const session = new ControlSession({ urls: [url], credentials, config, logger, registration: { type: 'register', address: '127.0.0.1:7000', zone: 'z', weight: 1 } });
    const renewer = new CertificateRenewer({ credentials, session, logger });
    const connected = nextPeer();
    session.start();
    const peer = await connected;
    const before = credentials.current.certPem;
    try {
      assert.equal((await peer.next()).type, 'register');
      for (const [certPem, code] of [
        [ahead.certPem, 'TRELLIS_ERR_CERT_NOT_YET_VALID'],
        [behind.certPem, 'TRELLIS_ERR_CERT_EXPIRED'],
        [unreadable, 'TRELLIS_ERR_CERT_UNREADABLE'],
      ] as const) {
        const refused = once(session, 'certificate-refused');
        peer.send({ type: 'certificate', certPem, caPems: testCa.ca.caPems(), expiresAt: Date.now() + 3_600_000 });
        const [refusal] = (await refused) as [LeafRefusal];
        assert.equal(refusal.code, code);
        assert.equal(credentials.current.certPem, before, 'the certificate in use stays');
        assert.equal(renewer.failing, true);
      }
      const taken = once(session, 'certificate');
      peer.send({ type: 'certificate', certPem: good.certPem, caPems: testCa.ca.caPems(), expiresAt: good.expiresAt });
      await taken;
      assert.equal(credentials.current.certPem, good.certPem);
      assert.equal(renewer.failing, false, 'a certificate taken ends the failure');
    } finally {
      renewer.stop();
      session.close();
      for (const dir of caDirs) await rm(dir, { recursive: true, force: true });
    }
  });
});
