// TLS session resumption between two identities from one mesh CA, on real loopback sockets.
// What every transport must do is in link-transport-suite.ts (run by link-transports.test.ts).
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { RevokedPeers } from '../../sidecar/links/revoked-peers.js';
import type { AuthenticatedLink, LinkListener } from '../../sidecar/links/transport.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const TRUST_DOMAIN = 'links.test';

describe('TlsLinkTransport', () => {
  let mesh: TestCa;
  let caller: Credentials;
  let listener: LinkListener;
  const accepted: AuthenticatedLink[] = [];

  before(async () => {
    mesh = await createTestCa(TRUST_DOMAIN);
    caller = await credentialsFor(mesh.ca, 'caller');
    listener = await new TlsLinkTransport(await credentialsFor(mesh.ca, 'api')).listen(parseLinkUrl('tls://127.0.0.1:0'), (link) => {
      accepted.push(link);
      // The server sends its session tickets right after the handshake, before this byte.
      link.socket.write('x');
    });
  });

  after(async () => {
    for (const link of accepted) link.socket.destroy();
    await listener?.close();
    await mesh?.remove();
  });

  /** Dials the listener, reads its first byte (so that the session ticket has arrived), and hangs up. */
  async function dialOnce(transport: TlsLinkTransport): Promise<{ resumed: boolean; peerAtListener: PeerIdentity | undefined }> {
    const acceptedBefore = accepted.length;
    const link = await transport.dial({ address: listener.url, peer: { kind: 'service', service: 'api' } });
    const socket = link.socket as TLSSocket;
    // TLS 1.3 tickets follow the handshake: the listener's first byte comes after them.
    await once(socket, 'data');
    const resumed = socket.isSessionReused();
    socket.end();
    await once(socket, 'close');
    return { resumed, peerAtListener: accepted[acceptedBefore]?.peer };
  }

  it('resumes the TLS session when it dials the same peer again, and the listener still knows the caller', async () => {
    const transport = new TlsLinkTransport(caller);
    const first = await dialOnce(transport);
    assert.equal(first.resumed, false, 'the first link makes a full handshake');
    assert.deepEqual(first.peerAtListener, { kind: 'service', service: 'caller' });
    const second = await dialOnce(transport);
    assert.equal(second.resumed, true, 'the second link resumes');
    assert.deepEqual(second.peerAtListener, { kind: 'service', service: 'caller' }, 'a resumed session still carries the caller certificate');
  });

  it('handshakes afresh after its own certificate changed', async () => {
    const transport = new TlsLinkTransport(caller);
    await dialOnce(transport);
    caller.replace({ certPem: caller.current.certPem });
    const afterChange = await dialOnce(transport);
    assert.equal(afterChange.resumed, false);
  });

  it('handshakes afresh with a listener restarted at the same address: its old tickets are not accepted', async () => {
    const api = await credentialsFor(mesh.ca, 'api');
    const links: AuthenticatedLink[] = [];
    const onLink = (link: AuthenticatedLink): void => {
      links.push(link);
      link.socket.write('x');
    };
    const first = await new TlsLinkTransport(api).listen(parseLinkUrl('tls://127.0.0.1:0'), onLink);
    const address = first.url;
    const transport = new TlsLinkTransport(caller);
    const dial = async (): Promise<boolean> => {
      const socket = (await transport.dial({ address, peer: { kind: 'service', service: 'api' } })).socket as TLSSocket;
      await once(socket, 'data');
      const resumed = socket.isSessionReused();
      socket.end();
      await once(socket, 'close');
      return resumed;
    };
    let second: LinkListener | undefined;
    try {
      await dial();
      assert.equal(await dial(), true, 'resumes with the listener that issued the ticket');
      for (const link of links) link.socket.destroy();
      await first.close();
      // The same process's key pair, a new listener: new ticket keys, as after a restart.
      second = await new TlsLinkTransport(api).listen(parseLinkUrl(address), onLink);
      assert.equal(await dial(), false, 'a full handshake with the new listener');
      assert.deepEqual(links.at(-1)?.peer, { kind: 'service', service: 'caller' });
    } finally {
      for (const link of links) link.socket.destroy();
      await first.close().catch(() => undefined);
      await second?.close();
    }
  });

  it('handshakes afresh after a revocation arrived, so that no resumed session hides a revoked certificate', async () => {
    // The mesh config's revocation entries: none here; the event is what matters.
    const revocations = Object.assign(new EventEmitter(), { sidecar: () => undefined, service: () => undefined });
    const revokedPeers = new RevokedPeers({ revocations, onRefused: () => undefined, logger: pino({ level: 'silent' }) });
    const transport = new TlsLinkTransport(caller, { revokedPeers });
    await dialOnce(transport);
    assert.equal((await dialOnce(transport)).resumed, true, 'resumes before the revocation');
    revocations.emit('revocations');
    assert.equal((await dialOnce(transport)).resumed, false, 'a full handshake after it');
  });
});
