// A link that goes away (the peer's GOAWAY, or a draining gateway under a tunnelled link) keeps
// its open streams, new streams get a new link, and the active-links gauge counts both while
// both are open, then one.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import type { AuthenticatedLink } from '../../sidecar/links/transport.js';
import { LinkManager } from '../../sidecar/links/link-manager.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { next, tcpPair } from '../mux/helpers.js';

const TARGET = { address: '127.0.0.1:1', peer: { kind: 'service', service: 'api' } } as const;

/** A manager whose every dial is a fresh TCP pair with an accepting session at the far end. */
function managerWithPeers(carrierDrains: ((gateway: string) => void)[] = []): { links: LinkManager; metrics: PrometheusSidecarMetrics; peers: Session[]; peerStream: () => Promise<MuxStream> } {
  const metrics = new PrometheusSidecarMetrics({ service: 'web' });
  const peers: Session[] = [];
  const streams: MuxStream[] = [];
  const waiting: ((stream: MuxStream) => void)[] = [];
  const arrived = (stream: MuxStream): void => {
    const taker = waiting.shift();
    if (taker !== undefined) taker(stream);
    else streams.push(stream);
  };
  /** The next stream the far end accepted. */
  const peerStream = (): Promise<MuxStream> => {
    const stream = streams.shift();
    return stream !== undefined ? Promise.resolve(stream) : new Promise((resolve) => waiting.push(resolve));
  };
  const links = new LinkManager({
    dialer: {
      dial: async (): Promise<AuthenticatedLink> => {
        const { client, server } = await tcpPair();
        peers.push(new Session(server, { role: 'acceptor', onStream: arrived }));
        return {
          socket: client,
          peer: { kind: 'service', service: 'api' },
          peerId: 'sc-api',
          peerAddress: 'api',
          onCarrierDrain: (listener) => void carrierDrains.push(listener),
        };
      },
    },
    metrics,
    logger: pino({ level: 'silent' }),
  });
  return { links, metrics, peers, peerStream };
}

async function linksActive(metrics: PrometheusSidecarMetrics): Promise<number> {
  const { body } = await metrics.render();
  const line = body.split('\n').find((l) => l.startsWith('trellis_sidecar_links_active ') || l.startsWith('trellis_sidecar_links_active{'));
  return Number(line?.split(' ').at(-1));
}

describe('link manager: links that go away', () => {
  it('after the peer\'s GOAWAY, opens new streams on a new link and counts each link once', async () => {
    const { links, metrics, peers, peerStream } = managerWithPeers();
    const first = await links.openStream(TARGET, 'api');
    const firstSession = await links.sessionFor(TARGET);
    // The far end holds the stream before it goes away (else it would refuse it: GOING_AWAY).
    await peerStream();
    const [firstPeer] = peers;
    assert.ok(firstPeer !== undefined);
    const heard = next(firstSession, 'goaway');
    firstPeer.goAway();
    await heard;
    const second = await links.openStream(TARGET, 'api');
    assert.notEqual(await links.sessionFor(TARGET), firstSession);
    assert.equal(peers.length, 2);
    assert.equal(await linksActive(metrics), 2, 'the old link is still open, with its stream');
    // The old link's stream ends; the link then closes, and the gauge follows.
    const closed = next(firstSession, 'close');
    first.reset(0);
    await closed;
    assert.equal(await linksActive(metrics), 1);
    second.reset(0);
    links.close();
    for (const peer of peers) peer.close();
  });

  it('sends GOAWAY on a tunnelled link whose gateway drains, keeps its streams, and dials a new link for new ones', async () => {
    const drains: ((gateway: string) => void)[] = [];
    const { links, metrics, peers, peerStream } = managerWithPeers(drains);
    const first = await links.openStream(TARGET, 'api');
    const firstSession = await links.sessionFor(TARGET);
    const far = await peerStream();
    const [firstPeer] = peers;
    assert.ok(firstPeer !== undefined && drains.length === 1);
    const peerHeard = next<[number, string]>(firstPeer, 'goaway');
    drains[0]?.('b/gb');
    assert.equal((await peerHeard)[0], 0, 'GOAWAY NONE: a drain, not an error');
    assert.equal(firstSession.accepting, false);
    // The open stream still carries bytes.
    const arrived = next<[Buffer]>(far, 'data');
    first.write(Buffer.from('still here'));
    assert.equal((await arrived)[0].toString(), 'still here');
    const second = await links.openStream(TARGET, 'api');
    assert.equal(peers.length, 2);
    assert.equal(await linksActive(metrics), 2);
    first.reset(0);
    second.reset(0);
    links.close();
    for (const peer of peers) peer.close();
  });
});
