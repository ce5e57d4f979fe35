// TLS links between two identities from one mesh CA, on real loopback sockets.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { signSidecarCsr } from '../../control-plane/cert-issuer.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { createCsrPem, generateSidecarKeyPair } from '../../sidecar/identity/keys.js';
import type { AuthenticatedLink, LinkListener } from '../../sidecar/links/transport.js';
import { TlsLinkTransport } from '../../sidecar/links/tls-transport.js';

const TRUST_DOMAIN = 'links.test';
const HOUR_MS = 3_600_000;

async function credentialsFor(ca: CertificateAuthority, service: string): Promise<Credentials> {
  const keys = await generateSidecarKeyPair();
  const sidecarId = `${service}-1`;
  const issued = signSidecarCsr(ca, await createCsrPem(keys.privateKeyPem, sidecarId), { sidecarId, service }, HOUR_MS);
  return new Credentials({
    trustDomain: TRUST_DOMAIN,
    service,
    sidecarId,
    privateKeyPem: keys.privateKeyPem,
    certPem: issued.certPem,
    caPems: [ca.certPem],
    expiresAt: Date.now() + HOUR_MS,
  });
}

describe('TlsLinkTransport', () => {
  let dataDir: string;
  let caller: Credentials;
  let listener: LinkListener;
  const accepted: AuthenticatedLink[] = [];

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'trellis-links-'));
    const ca = await CertificateAuthority.loadOrCreate({ dataDir, trustDomain: TRUST_DOMAIN, logger: pino({ level: 'silent' }), now: Date.now });
    caller = await credentialsFor(ca, 'caller');
    listener = await new TlsLinkTransport(await credentialsFor(ca, 'api')).listen('127.0.0.1', 0, (link) => {
      accepted.push(link);
      // The server sends its session tickets right after the handshake, before this byte.
      link.socket.write('x');
    });
  });

  after(async () => {
    for (const link of accepted) link.socket.destroy();
    await listener?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  /** Dials the listener, reads its first byte (so that the session ticket has arrived), and hangs up. */
  async function dialOnce(transport: TlsLinkTransport): Promise<{ resumed: boolean; peerServiceAtListener: string | undefined }> {
    const acceptedBefore = accepted.length;
    const link = await transport.dial({ address: listener.address, service: 'api' });
    const socket = link.socket as TLSSocket;
    // TLS 1.3 tickets follow the handshake: the listener's first byte comes after them.
    await once(socket, 'data');
    const resumed = socket.isSessionReused();
    socket.end();
    await once(socket, 'close');
    return { resumed, peerServiceAtListener: accepted[acceptedBefore]?.peerService };
  }

  it('resumes the TLS session when it dials the same peer again, and the listener still knows the caller', async () => {
    const transport = new TlsLinkTransport(caller);
    const first = await dialOnce(transport);
    assert.equal(first.resumed, false, 'the first link makes a full handshake');
    assert.equal(first.peerServiceAtListener, 'caller');
    const second = await dialOnce(transport);
    assert.equal(second.resumed, true, 'the second link resumes');
    assert.equal(second.peerServiceAtListener, 'caller', 'a resumed session still carries the caller certificate');
  });

  it('handshakes afresh after its own certificate changed', async () => {
    const transport = new TlsLinkTransport(caller);
    await dialOnce(transport);
    caller.replace({ certPem: caller.current.certPem });
    const afterChange = await dialOnce(transport);
    assert.equal(afterChange.resumed, false);
  });
});
