// The contract every LinkTransport keeps (sidecar/links/transport.ts), on real loopback sockets.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { formatLinkUrl, parseLinkUrl } from '../../sidecar/links/link-url.js';
import type { AuthenticatedLink, LinkListener, LinkTransport } from '../../sidecar/links/transport.js';
import { sha256 } from '../support/apps.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';
import { freeLoopbackPort } from '../support/ports.js';

const TRUST_DOMAIN = 'links.test';
const PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Every case is bounded: a link that never ends fails the case instead of hanging the run. */
const CASE = { timeout: 30_000 };

/** How one transport is built and reached, for the suite. */
export interface LinkTransportFixture {
  /** Where listeners bind, e.g. `tls://127.0.0.1:0`. */
  listenUrl: string;
  /** A transport holding `credentials`, built as a process would build it. */
  transport(credentials: Credentials): LinkTransport;
  /** A byte stream to a listener's url below the link's TLS, for clients no transport makes (no certificate). */
  openRawStream(listenerUrl: string): Promise<Duplex>;
  /** The `.code` a dial to a port nobody listens on rejects with. */
  closedPortCode: string;
  /** Stops what the fixture started (a proxy). */
  close?(): Promise<void>;
}

/** Links a listener accepted, in order; `next()` waits for the next one. */
class Inbox {
  readonly links: AuthenticatedLink[] = [];
  readonly #waiting: ((link: AuthenticatedLink) => void)[] = [];

  readonly accept = (link: AuthenticatedLink): void => {
    this.links.push(link);
    this.#waiting.shift()?.(link);
  };

  next(): Promise<AuthenticatedLink> {
    const index = this.links.length;
    return new Promise((resolve) => (this.links[index] !== undefined ? resolve(this.links[index]) : this.#waiting.push(resolve)));
  }
}

/** Everything the socket reads until its clean end; rejects on an error or a close without end. */
function readToEnd(socket: Duplex): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed without a clean end')));
  });
}

/**
 * Resolves once a refused client is off: its dial rejected, or (TLS 1.3 lets a client finish
 * its handshake before the server has checked its certificate) its link closed unread.
 */
async function refused(dial: Promise<Duplex>): Promise<void> {
  let socket: Duplex;
  try {
    socket = await dial;
  } catch {
    return;
  }
  await new Promise<void>((resolve, reject) => {
    socket.on('data', () => reject(new Error('a refused client received bytes')));
    // The listener's alert (certificate required, unknown CA) or its hang-up: either is a refusal.
    socket.once('error', () => resolve());
    socket.once('close', () => resolve());
  });
}

/** Registers the compliance cases for the transport `makeFixture` builds. */
export function linkTransportSuite(name: string, makeFixture: () => Promise<LinkTransportFixture>): void {
  describe(`LinkTransport contract: ${name}`, () => {
    let fixture: LinkTransportFixture;
    let mesh: TestCa;
    let foreign: TestCa;
    const creds = {} as Record<'caller' | 'api' | 'edge' | 'core' | 'foreignCaller', Credentials>;
    const listeners: LinkListener[] = [];
    const sockets: Duplex[] = [];

    before(async () => {
      fixture = await makeFixture();
      [mesh, foreign] = await Promise.all([createTestCa(TRUST_DOMAIN), createTestCa(TRUST_DOMAIN)]);
      [creds.caller, creds.api, creds.edge, creds.core, creds.foreignCaller] = await Promise.all([
        credentialsFor(mesh.ca, 'caller'),
        credentialsFor(mesh.ca, 'api'),
        credentialsFor(mesh.ca, { kind: 'gateway', zone: 'eu', name: 'edge' }),
        credentialsFor(mesh.ca, { kind: 'gateway', zone: 'us', name: 'core' }),
        // Trusts the mesh, so that the listener (not the client) is the one that refuses.
        credentialsFor(foreign.ca, 'caller', { trust: mesh.ca.caPems() }),
      ]);
    });

    afterEach(async () => {
      for (const socket of sockets.splice(0)) socket.destroy();
      await Promise.all(listeners.splice(0).map((listener) => listener.close()));
    });

    after(async () => {
      await fixture?.close?.();
      await Promise.all([mesh?.remove(), foreign?.remove()]);
    });

    async function listen(credentials: Credentials): Promise<{ listener: LinkListener; inbox: Inbox }> {
      const inbox = new Inbox();
      const listener = await fixture.transport(credentials).listen(parseLinkUrl(fixture.listenUrl), (link) => {
        sockets.push(link.socket);
        inbox.accept(link);
      });
      listeners.push(listener);
      return { listener, inbox };
    }

    async function dial(credentials: Credentials, address: string, peer: PeerIdentity): Promise<AuthenticatedLink> {
      const link = await fixture.transport(credentials).dial({ address, peer });
      sockets.push(link.socket);
      return link;
    }

    it('a dial reaches the listener and each end sees the other service', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const link = await dial(creds.caller, listener.url, { kind: 'service', service: 'api' });
      const accepted = await inbox.next();
      assert.deepEqual(link.peer, { kind: 'service', service: 'api' });
      assert.equal(link.peerId, 'api-1');
      assert.deepEqual(accepted.peer, { kind: 'service', service: 'caller' });
      assert.equal(accepted.peerId, 'caller-1');
    });

    it('a dial between gateways shows both gateway identities', CASE, async () => {
      const { listener, inbox } = await listen(creds.edge);
      const link = await dial(creds.core, listener.url, { kind: 'gateway', zone: 'eu', name: 'edge' });
      const accepted = await inbox.next();
      assert.deepEqual(link.peer, { kind: 'gateway', zone: 'eu', name: 'edge' });
      assert.equal(link.peerId, 'gw-eu-edge');
      assert.deepEqual(accepted.peer, { kind: 'gateway', zone: 'us', name: 'core' });
      assert.equal(accepted.peerId, 'gw-us-core');
    });

    it('carries several MiB each way at once, byte-exact, to a clean end', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const link = await dial(creds.caller, listener.url, { kind: 'service', service: 'api' });
      const accepted = await inbox.next();
      const [up, down] = [randomBytes(PAYLOAD_BYTES), randomBytes(PAYLOAD_BYTES)];
      const [atListener, atDialler] = [readToEnd(accepted.socket), readToEnd(link.socket)];
      link.socket.end(up);
      accepted.socket.end(down);
      assert.equal(sha256(await atListener), sha256(up));
      assert.equal(sha256(await atDialler), sha256(down));
    });

    it('after one end finishes sending, the other direction still delivers everything', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const link = await dial(creds.caller, listener.url, { kind: 'service', service: 'api' });
      const accepted = await inbox.next();
      const reply = randomBytes(PAYLOAD_BYTES);
      const atDialler = readToEnd(link.socket);
      link.socket.end('request');
      // The listener answers only once the request is in: by then the dialler has ended its side.
      const request = await new Promise<Buffer>((resolve, reject) => {
        accepted.socket.once('data', (chunk: Buffer) => {
          accepted.socket.end(reply);
          resolve(chunk);
        });
        accepted.socket.once('error', reject);
      });
      assert.equal(request.toString(), 'request');
      assert.equal(link.socket.writableEnded, true);
      assert.equal(sha256(await atDialler), sha256(reply));
    });

    it('a listener refuses a client that shows no certificate', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const raw = await fixture.openRawStream(listener.url);
      sockets.push(raw);
      const client = tls.connect({ socket: raw, ca: mesh.ca.caPems(), minVersion: 'TLSv1.3', checkServerIdentity: () => undefined });
      sockets.push(client);
      await Promise.race([
        refused(new Promise<Duplex>((resolve, reject) => client.once('secureConnect', () => resolve(client)).once('error', reject))),
        inbox.next().then(() => assert.fail('the listener accepted a client without a certificate')),
      ]);
      assert.equal(inbox.links.length, 0);
    });

    it('a listener refuses a client that offers TLS 1.2 at most, even with a mesh certificate', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const raw = await fixture.openRawStream(listener.url);
      sockets.push(raw);
      const { certPem, privateKeyPem } = creds.caller.current;
      const client = tls.connect({ socket: raw, ca: mesh.ca.caPems(), cert: certPem, key: privateKeyPem, maxVersion: 'TLSv1.2', checkServerIdentity: () => undefined });
      sockets.push(client);
      const outcome = await Promise.race([
        new Promise<string>((resolve) => {
          client.once('secureConnect', () => resolve(`connected with ${client.getProtocol() ?? '?'}`));
          client.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'no code'));
        }),
        inbox.next().then(() => 'accepted'),
      ]);
      // The listener answers the ClientHello with a protocol_version alert.
      assert.equal(outcome, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
      assert.equal(inbox.links.length, 0);
    });

    it('a listener refuses a client whose certificate comes from a foreign CA', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const transport = fixture.transport(creds.foreignCaller);
      await Promise.race([
        refused(transport.dial({ address: listener.url, peer: { kind: 'service', service: 'api' } }).then((link) => link.socket)),
        inbox.next().then(() => assert.fail('the listener accepted a client certificate from a foreign CA')),
      ]);
      assert.equal(inbox.links.length, 0);
    });

    it('a dialler refuses a listener that proves another identity', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      await assert.rejects(dial(creds.caller, listener.url, { kind: 'service', service: 'billing' }), { code: 'TRELLIS_ERR_PEER_IDENTITY' });
      await assert.rejects(dial(creds.caller, listener.url, { kind: 'gateway', zone: 'eu', name: 'api' }), { code: 'TRELLIS_ERR_PEER_IDENTITY' });
      assert.equal(inbox.links.length, 0);
    });

    it('a dial to a port nobody listens on rejects', CASE, async () => {
      const closed = formatLinkUrl({ ...parseLinkUrl(fixture.listenUrl), port: await freeLoopbackPort() });
      await assert.rejects(dial(creds.caller, closed, { kind: 'service', service: 'api' }), { code: fixture.closedPortCode });
    });

    it('a closed listener accepts no more links', CASE, async () => {
      const { listener, inbox } = await listen(creds.api);
      const link = await dial(creds.caller, listener.url, { kind: 'service', service: 'api' });
      (await inbox.next()).socket.destroy();
      link.socket.destroy();
      await listener.close();
      await assert.rejects(dial(creds.caller, listener.url, { kind: 'service', service: 'api' }), { code: fixture.closedPortCode });
      assert.equal(inbox.links.length, 1);
    });

    it('closing a listener does not wait for the links it accepted, which stay open and carry bytes', CASE, async () => {
      // Two gateways linked to each other stop at once: each closes its listener before its
      // links, so a close() that waited for accepted links would wait for the other forever.
      const { listener, inbox } = await listen(creds.api);
      const link = await dial(creds.caller, listener.url, { kind: 'service', service: 'api' });
      const accepted = await inbox.next();
      await listener.close();
      const [atListener, atDialler] = [readToEnd(accepted.socket), readToEnd(link.socket)];
      link.socket.end('after close, up');
      accepted.socket.end('after close, down');
      assert.equal((await atListener).toString(), 'after close, up');
      assert.equal((await atDialler).toString(), 'after close, down');
    });

    it("a listener's url names its scheme, host and the port it really bound", CASE, async () => {
      const { listener } = await listen(creds.api);
      const asked = parseLinkUrl(fixture.listenUrl);
      const bound = parseLinkUrl(listener.url);
      assert.notEqual(bound.port, 0);
      assert.deepEqual({ ...bound, port: 0 }, asked);
    });
  });
}
