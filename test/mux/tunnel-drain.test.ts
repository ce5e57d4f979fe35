/**
 * Protocol version 3 on the mux: TUNNEL_DRAIN on a tunnel stream, its rules (version, stream
 * kind, stream ids), and a gateway's splice carrying it on to the far end of a tunnel.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ErrorCode, FrameType, TUNNEL_DRAIN_PROTOCOL_VERSION } from '../../proto/index.js';
import type { Frame, GoAwayFrame, TrellisError, TunnelFrame } from '../../proto/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { spliceStreams } from '../../sidecar/tunnel/splice.js';
import { next, RawPeer, receiveAll, sendAll, sessionPair, sha256, tcpPair } from './helpers.js';

const PATH = ['a/ga', 'b/gb'];
const TARGET = 'sc-0123456789ab';

/** A dialer–acceptor pair whose acceptor hands out the tunnels it is asked for. */
async function tunnelPair(acceptorVersion?: number): Promise<{ dialer: Session; acceptor: Session; nextTunnel: () => Promise<MuxStream> }> {
  const waiting: ((stream: MuxStream) => void)[] = [];
  const arrived: MuxStream[] = [];
  const { dialer, acceptor } = sessionPair(await tcpPair(), {}, {
    ...(acceptorVersion === undefined ? {} : { maxVersion: acceptorVersion }),
    onTunnel: (stream) => {
      const taker = waiting.shift();
      if (taker !== undefined) taker(stream);
      else arrived.push(stream);
    },
  });
  await dialer.whenReady();
  const nextTunnel = (): Promise<MuxStream> => {
    const stream = arrived.shift();
    return stream !== undefined ? Promise.resolve(stream) : new Promise((resolve) => waiting.push(resolve));
  };
  return { dialer, acceptor, nextTunnel };
}

/** A raw peer on a session that accepts tunnels, after the HELLO exchange at `version`. */
async function rawPeerOnSession(version: number): Promise<{ peer: RawPeer; session: Session; closed: Promise<TrellisError | undefined> }> {
  const sockets = await tcpPair();
  const session = new Session(sockets.server, { role: 'acceptor', onTunnel: () => undefined, onStream: () => undefined });
  const closed = next<[TrellisError | undefined]>(session, 'close').then(([error]) => error);
  const peer = new RawPeer(sockets.client);
  peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: version, initialWindowBytes: 65536 });
  await session.whenReady();
  return { peer, session, closed };
}

async function linkError(peer: RawPeer, closed: Promise<TrellisError | undefined>): Promise<{ code: string | undefined; wireCode: number }> {
  const goAway = (await peer.waitFor((frame) => frame.type === FrameType.GOAWAY)) as GoAwayFrame;
  return { code: (await closed)?.code, wireCode: goAway.code };
}

describe('mux TUNNEL_DRAIN (protocol version 3)', () => {
  it('delivers TUNNEL_DRAIN to the tunnel stream at the other end, with the gateway named', async () => {
    const { dialer, acceptor, nextTunnel } = await tunnelPair();
    assert.equal(dialer.version, TUNNEL_DRAIN_PROTOCOL_VERSION);
    const near = dialer.openTunnel(PATH, 0, TARGET);
    const far = await nextTunnel();
    const told = next<[string]>(near, 'tunnelDrain');
    assert.equal(far.sendTunnelDrain('a/ga'), true);
    assert.deepEqual(await told, ['a/ga']);
    // And the other way.
    const toldFar = next<[string]>(far, 'tunnelDrain');
    assert.equal(near.sendTunnelDrain('b/gb'), true);
    assert.deepEqual(await toldFar, ['b/gb']);
    // The stream carries on: a drain moves new streams, it does not cut this one.
    const bytes = randomBytes(256 * 1024);
    const [received] = await Promise.all([receiveAll(far), sendAll(near, bytes)]);
    assert.equal(received.sha256, sha256(bytes));
    dialer.close();
    acceptor.close();
  });

  it('sends nothing on a plain stream, on a done stream, or on a version-2 link', async () => {
    const { dialer, acceptor, nextTunnel } = await tunnelPair(2);
    assert.equal(dialer.version, 2);
    const tunnel = dialer.openTunnel(PATH, 0, TARGET);
    await nextTunnel();
    assert.equal(tunnel.sendTunnelDrain('a/ga'), false);
    dialer.close();
    acceptor.close();

    const v3 = await tunnelPair();
    const plain = v3.dialer.openStream('svc');
    assert.equal(plain.sendTunnelDrain('a/ga'), false);
    const done = v3.dialer.openTunnel(PATH, 0, TARGET);
    (await v3.nextTunnel()).reset(ErrorCode.NO_ROUTE);
    await next(done, 'close');
    assert.equal(done.sendTunnelDrain('a/ga'), false);
    v3.dialer.close();
    v3.acceptor.close();
  });

  it('closes a version-2 link that carries TUNNEL_DRAIN with PROTOCOL_ERROR (TRELLIS_ERR_UNEXPECTED_FRAME)', async () => {
    const { peer, closed } = await rawPeerOnSession(2);
    const tunnel: TunnelFrame = { type: FrameType.TUNNEL, streamId: 1, path: PATH, hop: 0, target: TARGET };
    peer.send(tunnel, { type: FrameType.TUNNEL_DRAIN, streamId: 1, gateway: 'a/ga' });
    assert.deepEqual(await linkError(peer, closed), { code: 'TRELLIS_ERR_UNEXPECTED_FRAME', wireCode: ErrorCode.PROTOCOL_ERROR });
  });

  it('closes the link on TUNNEL_DRAIN for a plain stream (TRELLIS_ERR_UNEXPECTED_FRAME) or a stream never opened (TRELLIS_ERR_STREAM_ID)', async () => {
    const plain = await rawPeerOnSession(3);
    plain.peer.send({ type: FrameType.OPEN, streamId: 1, service: 'svc' }, { type: FrameType.TUNNEL_DRAIN, streamId: 1, gateway: 'a/ga' });
    assert.deepEqual(await linkError(plain.peer, plain.closed), { code: 'TRELLIS_ERR_UNEXPECTED_FRAME', wireCode: ErrorCode.PROTOCOL_ERROR });

    const unopened = await rawPeerOnSession(3);
    unopened.peer.send({ type: FrameType.TUNNEL_DRAIN, streamId: 7, gateway: 'a/ga' });
    assert.deepEqual(await linkError(unopened.peer, unopened.closed), { code: 'TRELLIS_ERR_STREAM_ID', wireCode: ErrorCode.PROTOCOL_ERROR });
  });

  it('ignores TUNNEL_DRAIN on a tunnel stream that is done: it may have crossed the stream\'s end', async () => {
    const { peer, session, closed } = await rawPeerOnSession(3);
    const frames: Frame[] = [
      { type: FrameType.TUNNEL, streamId: 1, path: PATH, hop: 0, target: TARGET },
      { type: FrameType.RESET, streamId: 1, code: ErrorCode.STREAM_ABORTED, message: '' },
      { type: FrameType.TUNNEL_DRAIN, streamId: 1, gateway: 'a/ga' },
      { type: FrameType.PING, nonce: 42 },
    ];
    peer.send(...frames);
    // The PING after it is answered: the link is still up.
    await peer.waitFor((frame) => frame.type === FrameType.PONG && frame.nonce === 42);
    assert.equal(peer.frames.some((frame) => frame.type === FrameType.GOAWAY), false);
    session.close();
    assert.equal(await closed, undefined);
  });

  it('crosses a splice: a drain told to one segment reaches the far end of the tunnel, and the bytes stay exact', async () => {
    // source ─ gateway ─ destination, in one process: the gateway splices its two segments.
    const first = await tunnelPair();
    const second = await tunnelPair();
    const atSource = first.dialer.openTunnel(PATH, 0, TARGET);
    const inbound = await first.nextTunnel();
    const outbound = second.dialer.openTunnel(PATH, 2, TARGET);
    const atDestination = await second.nextTunnel();
    spliceStreams(inbound, outbound);

    const sourceTold = next<[string]>(atSource, 'tunnelDrain');
    // The next gateway (as the destination's link) says it is draining: the source hears it.
    assert.equal(atDestination.sendTunnelDrain('b/gb'), true);
    assert.deepEqual(await sourceTold, ['b/gb']);
    const destinationTold = next<[string]>(atDestination, 'tunnelDrain');
    assert.equal(atSource.sendTunnelDrain('a/ga'), true);
    assert.deepEqual(await destinationTold, ['a/ga']);

    const up = randomBytes(512 * 1024);
    const down = randomBytes(128 * 1024);
    const [receivedUp, receivedDown] = await Promise.all([receiveAll(atDestination), receiveAll(atSource), sendAll(atSource, up), sendAll(atDestination, down)]);
    assert.equal(receivedUp.sha256, sha256(up));
    assert.equal(receivedDown.sha256, sha256(down));
    for (const pair of [first, second]) {
      pair.dialer.close();
      pair.acceptor.close();
    }
  });
});
