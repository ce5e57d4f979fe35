/**
 * Credit-based flow control: a slow stream is held at its window without slowing the link,
 * and the socket's own buffer stays within the link budget whatever the number of streams.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { FrameType } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { Session } from '../../sidecar/mux/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { next, RawPeer, sendAll, sessionPair, sha256, streamInbox, tcpPair } from './helpers.js';

const WINDOW_BYTES = 256 * 1024;

describe('mux flow control', () => {
  it('holds a stream that is not consumed at its window while another stream moves 8 MiB', async () => {
    const sockets = await tcpPair();
    const fastInbox = streamInbox();
    let slowAccepted: MuxStream | undefined;
    let slowDeliveredBytes = 0;
    let consumeSlow = false;
    let reachWindow = (): void => {};
    const windowReached = new Promise<void>((resolve) => (reachWindow = resolve));
    const { dialer, acceptor } = sessionPair(sockets, {}, {
      onStream: (stream, service) => {
        if (service !== 'slow') return fastInbox.onStream(stream);
        slowAccepted = stream;
        stream.on('data', (payload: Buffer) => {
          slowDeliveredBytes += payload.length;
          if (consumeSlow) stream.consumed(payload.length);
          if (slowDeliveredBytes === WINDOW_BYTES) reachWindow();
        });
      },
    });

    const slowData = randomBytes(1024 * 1024);
    const slow = dialer.openStream('slow');
    let slowDrained = false;
    slow.once('drain', () => (slowDrained = true));
    assert.equal(slow.write(slowData), false, 'write() reports that credit ran out');
    await windowReached;
    assert.deepEqual(slow.stats, { sendCreditBytes: 0, queuedBytes: slowData.length - WINDOW_BYTES, unconsumedBytes: 0, peerCreditBytes: WINDOW_BYTES });

    const fastData = randomBytes(8 * 1024 * 1024);
    const fast = dialer.openStream('fast');
    await sendAll(fast, fastData);
    const fastReceived = await (await fastInbox.nextStream()).received;
    assert.equal(fastReceived.sha256, sha256(fastData));

    // Stream A is still held exactly at its window; the socket was never paused for it.
    assert.ok(slowAccepted);
    assert.equal(slowDeliveredBytes, WINDOW_BYTES);
    assert.deepEqual(slowAccepted.stats, { sendCreditBytes: WINDOW_BYTES, queuedBytes: 0, unconsumedBytes: WINDOW_BYTES, peerCreditBytes: 0 });
    assert.equal(slowDrained, false);
    // Activity, as the idle sweeper reads it: what write() took (sent or queued), what arrived.
    assert.equal(slow.bytesMoved, slowData.length);
    assert.equal(slowAccepted.bytesMoved, WINDOW_BYTES);
    assert.equal(slow.closed, false);
    assert.equal(sockets.server.isPaused(), false);

    // Consuming returns credit: the rest flows and the writer gets 'drain'.
    const drained = next(slow, 'drain');
    consumeSlow = true;
    slowAccepted.consumed(slowDeliveredBytes);
    await drained;
    const ended = next(slowAccepted, 'end');
    slow.end();
    await ended;
    assert.equal(slowDeliveredBytes, slowData.length);
    dialer.close();
    acceptor.close();
  });

  it('keeps the socket buffer within maxLinkBufferedBytes when the peer stops reading', async () => {
    const sockets = await tcpPair();
    const maxLinkBufferedBytes = 512 * 1024;
    const maxFramePayloadBytes = 16 * 1024;
    const dialer = new Session(sockets.client, { role: 'dialer', maxLinkBufferedBytes, maxFramePayloadBytes });
    const peer = new RawPeer(sockets.server);
    const bigWindowBytes = 64 * 1024 * 1024;
    peer.send({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: bigWindowBytes });
    await next(dialer, 'ready');

    // The peer stops reading. Without the link budget every stream would hand its whole
    // credit (64 MiB each) to the socket at once.
    sockets.server.pause();
    const streamCount = 16;
    const bytesPerStream = 2 * 1024 * 1024;
    const streams = Array.from({ length: streamCount }, (_, index) => dialer.openStream(`svc-${index}`));
    for (const stream of streams) {
      assert.equal(stream.write(randomBytes(bytesPerStream)), false);
      stream.end();
    }
    // One frame may cross the budget; then every stream waits for 'drain'.
    assert.ok(dialer.stats.bufferedBytes <= maxLinkBufferedBytes + maxFramePayloadBytes + 4096, `${dialer.stats.bufferedBytes}`);
    const queuedBytes = streams.reduce((sum, stream) => sum + stream.stats.queuedBytes, 0);
    assert.ok(queuedBytes >= streamCount * bytesPerStream - maxLinkBufferedBytes - maxFramePayloadBytes);

    // Once the peer reads again, every stream's bytes and FIN arrive.
    const receivedBytes = new Map<number, number>();
    const finished = new Set<number>();
    const allFinished = peer.waitFor((frame: Frame) => {
      if (frame.type === FrameType.DATA) receivedBytes.set(frame.streamId, (receivedBytes.get(frame.streamId) ?? 0) + frame.payload.length);
      if (frame.type === FrameType.FIN) finished.add(frame.streamId);
      return finished.size === streamCount;
    });
    sockets.server.resume();
    await allFinished;
    for (const stream of streams) assert.equal(receivedBytes.get(stream.id), bytesPerStream);
    dialer.close();
  });
});
