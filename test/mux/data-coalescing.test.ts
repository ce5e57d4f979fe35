/**
 * DATA coalescing: chunks queued on a stream leave in as few DATA frames as credit and the
 * frame size allow (one header for several chunks, which are not joined), byte for byte; and a
 * gateway's splice hands on the pieces of one tick together, so a relayed tunnel's frames are
 * not cut down to the size of the pieces its TLS socket read.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameType } from '../../proto/index.js';
import type { DataFrame, Frame, TunnelFrame } from '../../proto/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { spliceStreams } from '../../sidecar/tunnel/splice.js';
import { next, RawPeer, receiveAll, sendAll, sessionPair, sha256, tcpPair, tlsPair } from './helpers.js';

const PATH = ['a/ga', 'c/gc'];
const TARGET = 'sc-0123456789ab';

function dataFrames(frames: Frame[], streamId: number): DataFrame[] {
  return frames.filter((frame): frame is DataFrame => frame.type === FrameType.DATA && frame.streamId === streamId);
}

describe('mux DATA coalescing', () => {
  it('sends chunks queued while waiting for credit as one DATA frame, then splits at the credit', async () => {
    const sockets = await tcpPair();
    const dialer = new Session(sockets.client, { role: 'dialer' });
    const peer = new RawPeer(sockets.server);
    // No credit at first: every write queues.
    peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 0 });
    await next(dialer, 'ready');
    const stream = dialer.openStream('svc');
    const chunks = [randomBytes(1000), randomBytes(1000), randomBytes(1000), randomBytes(1000)];
    for (const chunk of chunks) assert.equal(stream.write(chunk), false);
    assert.equal(stream.stats.queuedBytes, 4000);

    // 2,500 bytes of credit: one frame of 2,500 (two and a half chunks), the rest waits.
    peer.send({ type: FrameType.WINDOW, streamId: stream.id, creditBytes: 2500 });
    await peer.waitFor((frame) => frame.type === FrameType.DATA && frame.streamId === stream.id);
    assert.deepEqual(dataFrames(peer.frames, stream.id).map((frame) => frame.payload.length), [2500]);
    const drained = next(stream, 'drain');
    peer.send({ type: FrameType.WINDOW, streamId: stream.id, creditBytes: 1500 });
    await drained;
    await peer.waitFor(() => dataFrames(peer.frames, stream.id).length === 2);
    const frames = dataFrames(peer.frames, stream.id);
    assert.deepEqual(frames.map((frame) => frame.payload.length), [2500, 1500]);
    assert.equal(sha256(Buffer.concat(frames.map((frame) => frame.payload))), sha256(Buffer.concat(chunks)));
    dialer.close();
    sockets.server.destroy();
  });

  it('caps a coalesced frame at maxFramePayloadBytes', async () => {
    const sockets = await tcpPair();
    const dialer = new Session(sockets.client, { role: 'dialer', maxFramePayloadBytes: 3000 });
    const peer = new RawPeer(sockets.server);
    peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 0 });
    await next(dialer, 'ready');
    const stream = dialer.openStream('svc');
    const data = randomBytes(8000);
    assert.equal(stream.writev([data.subarray(0, 2000), data.subarray(2000, 4000), data.subarray(4000, 8000)]), false);
    peer.send({ type: FrameType.WINDOW, streamId: stream.id, creditBytes: 8000 });
    await peer.waitFor(() => dataFrames(peer.frames, stream.id).reduce((sum, frame) => sum + frame.payload.length, 0) === 8000);
    const frames = dataFrames(peer.frames, stream.id);
    assert.deepEqual(frames.map((frame) => frame.payload.length), [3000, 3000, 2000]);
    assert.equal(sha256(Buffer.concat(frames.map((frame) => frame.payload))), sha256(data));
    dialer.close();
    sockets.server.destroy();
  });

  it('relays a spliced tunnel byte-exact both ways with frames larger than the TLS pieces it reads', async () => {
    // client --(TLS link 1)--> relay --(TCP link 2)--> server, the relay splicing the two
    // tunnel segments as a gateway does. The relay reads link 1 through TLS, which hands out
    // its bytes in pieces of at most 16 KiB; the frames it writes on link 2 carry more.
    let inbound: ((stream: MuxStream, tunnel: TunnelFrame) => void) | undefined;
    const atRelay = new Promise<[MuxStream, TunnelFrame]>((resolve) => (inbound = (stream, tunnel) => resolve([stream, tunnel])));
    const first = sessionPair(await tlsPair(), {}, { onTunnel: (stream, tunnel) => inbound?.(stream, tunnel) });
    const secondSockets = await tcpPair();
    const relayOut = new Session(secondSockets.client, { role: 'dialer' });
    const peer = new RawPeer(secondSockets.server);
    peer.send({ type: FrameType.HELLO, minVersion: 2, maxVersion: 2, initialWindowBytes: 16 * 1024 * 1024 });
    await Promise.all([first.dialer.whenReady(), next(relayOut, 'ready')]);

    const opened = first.dialer.openTunnel(PATH, 0, TARGET);
    const [relayIn, tunnel] = await atRelay;
    const relayNext = relayOut.openTunnel(tunnel.path, tunnel.hop + 1, tunnel.target);
    spliceStreams(relayIn, relayNext);
    const open = (await peer.waitFor((frame) => frame.type === FrameType.TUNNEL)) as TunnelFrame;

    const up = randomBytes(4 * 1024 * 1024);
    const sent = sendAll(opened, up, 256 * 1024);
    const frames = (): DataFrame[] => dataFrames(peer.frames, open.streamId);
    // The raw peer returns credit as the bytes arrive, as a reader that keeps up does.
    let received = 0;
    await peer.waitFor((frame) => {
      if (frame.type !== FrameType.DATA || frame.streamId !== open.streamId) return false;
      received += frame.payload.length;
      if (frame.payload.length > 0) peer.send({ type: FrameType.WINDOW, streamId: open.streamId, creditBytes: frame.payload.length });
      return received === up.length;
    });
    await sent;
    assert.equal(sha256(Buffer.concat(frames().map((frame) => frame.payload))), sha256(up));
    const largest = Math.max(...frames().map((frame) => frame.payload.length));
    assert.ok(largest > 16 * 1024, `largest relayed DATA frame: ${largest} bytes`);

    // And the other way, through the same splice.
    const down = randomBytes(200 * 1024); // within the relay's window for the peer
    const receivedDown = receiveAll(opened);
    for (let offset = 0; offset < down.length; offset += 64 * 1024) {
      peer.send({ type: FrameType.DATA, streamId: open.streamId, payload: down.subarray(offset, offset + 64 * 1024) });
    }
    peer.send({ type: FrameType.FIN, streamId: open.streamId });
    assert.equal((await receivedDown).sha256, sha256(down));
    first.dialer.close();
    first.acceptor.close();
    relayOut.close();
    secondSockets.server.destroy();
  });
});
