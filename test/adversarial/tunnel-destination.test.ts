// The destination end of a tunnel (PROTOCOL.md, "Tunnels", rule 3): a TUNNEL that is not for
// this sidecar, or that arrives from anyone but the last gateway of its path, is reset with
// ROUTE_REFUSED and counted; inside an accepted tunnel only a sidecar's certificate (chaining to
// the bundle) becomes a link. Real sessions over loopback TCP, real TLS inside the tunnel.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { ErrorCode } from '../../proto/index.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import { LinkTls } from '../../sidecar/links/link-tls.js';
import type { AuthenticatedLink } from '../../sidecar/links/transport.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { MuxStreamDuplex } from '../../sidecar/mux/index.js';
import { TunnelAcceptor } from '../../sidecar/tunnel/tunnel-acceptor.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';
import { next, sessionPair, tcpPair } from '../mux/helpers.js';
import { eventually } from '../support/mesh.js';

const PATH = ['a/ga', 'c/gc'];
const LAST_GATEWAY: PeerIdentity = { kind: 'gateway', zone: 'c', name: 'gc' };

describe('the destination of a tunnel', () => {
  let ca: TestCa;
  let foreignCa: TestCa;

  before(async () => {
    ca = await createTestCa('trellis.local');
    foreignCa = await createTestCa('trellis.local');
  });

  after(async () => {
    await ca?.remove();
    await foreignCa?.remove();
  });

  /** A destination sidecar `db` (id `db-1`) whose links arrive from `from`; what it refused and accepted. */
  async function destination(from: PeerIdentity): Promise<{ openTunnel: (path: string[], hop: number, target: string) => MuxStream; refusals: string[]; accepted: AuthenticatedLink[]; close(): void }> {
    const refusals: string[] = [];
    const accepted: AuthenticatedLink[] = [];
    const acceptor = new TunnelAcceptor({
      sidecarId: 'db-1',
      tls: new LinkTls(await credentialsFor(ca.ca, 'db')),
      accept: (link) => accepted.push(link),
      onRefused: (reason) => refusals.push(reason),
      logger: pino({ level: 'silent' }),
    });
    const sessions = sessionPair(await tcpPair(), {}, { onTunnel: (stream, tunnel) => acceptor.onTunnel(stream, tunnel, from) });
    await sessions.dialer.whenReady();
    return {
      openTunnel: (path, hop, target) => sessions.dialer.openTunnel(path, hop, target),
      refusals,
      accepted,
      close: () => {
        sessions.dialer.close();
        sessions.acceptor.close();
      },
    };
  }

  const refusedCases: { name: string; from: PeerIdentity; path: string[]; hop: number; target: string; reason: string }[] = [
    { name: 'for another sidecar', from: LAST_GATEWAY, path: PATH, hop: 2, target: 'db-2', reason: 'wrong-target' },
    { name: 'at a hop short of the path\'s end', from: LAST_GATEWAY, path: PATH, hop: 1, target: 'db-1', reason: 'wrong-target' },
    { name: 'from a gateway that is not the path\'s last', from: { kind: 'gateway', zone: 'a', name: 'ga' }, path: PATH, hop: 2, target: 'db-1', reason: 'wrong-previous-hop' },
    { name: 'from a sidecar', from: { kind: 'service', service: 'web' }, path: PATH, hop: 2, target: 'db-1', reason: 'wrong-previous-hop' },
  ];
  for (const { name, from, path, hop, target, reason } of refusedCases) {
    it(`resets a tunnel ${name} with ROUTE_REFUSED and counts ${reason}`, async () => {
      const end = await destination(from);
      const [code] = await next<[number]>(end.openTunnel(path, hop, target), 'reset');
      assert.equal(code, ErrorCode.ROUTE_REFUSED);
      assert.deepEqual(end.refusals, [reason]);
      assert.equal(end.accepted.length, 0);
      end.close();
    });
  }

  it('takes a source sidecar\'s certificate inside the tunnel as the link\'s peer', async () => {
    const end = await destination(LAST_GATEWAY);
    const source = new LinkTls(await credentialsFor(ca.ca, 'web'));
    const link = await source.client(new MuxStreamDuplex(end.openTunnel(PATH, 2, 'db-1')), { kind: 'service', service: 'db' }, 'db through gc');
    // TLS 1.3: the client is done before the server has checked the client's certificate.
    await eventually(() => end.accepted.length === 1, 'the destination to accept the tunnel\'s link');
    assert.deepEqual(end.accepted[0]?.peer, { kind: 'service', service: 'web' });
    assert.deepEqual(end.refusals, []);
    link.socket.destroy();
    end.accepted[0]?.socket.destroy();
    end.close();
  });

  it('refuses a gateway\'s certificate inside the tunnel (not-a-sidecar), and one of a foreign CA (handshake)', async () => {
    for (const [identity, issuer, reason] of [
      [LAST_GATEWAY, ca, 'not-a-sidecar'],
      [{ kind: 'service', service: 'web' }, foreignCa, 'handshake'],
    ] as const) {
      const end = await destination(LAST_GATEWAY);
      // The client trusts the destination's CA, whoever signed its own certificate.
      const source = new LinkTls(await credentialsFor(issuer.ca, identity, { trust: ca.ca.caPems() }));
      const duplex = new MuxStreamDuplex(end.openTunnel(PATH, 2, 'db-1'));
      const closed = new Promise((resolve) => duplex.once('close', resolve));
      duplex.on('error', () => undefined);
      await source.client(duplex, { kind: 'service', service: 'db' }, 'db through gc').then((link) => link.socket.on('error', () => undefined), () => undefined);
      await closed;
      assert.deepEqual(end.refusals, [reason]);
      assert.equal(end.accepted.length, 0);
      end.close();
    }
  });
});
