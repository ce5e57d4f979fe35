// PROTOCOL.md "Budget": a peer that keeps sending PINGs and reads none of the PONGs loses its link
// (GOAWAY RESOURCE_EXHAUSTED, TRELLIS_ERR_PEER_NOT_READING) instead of growing the queue without bound.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, FrameEncoder, FrameType } from '../../proto/index.js';
import type { GoAwayFrame } from '../../proto/index.js';
import { MuxError } from '../../sidecar/mux/errors.js';
import { PEER_NOT_READING_BUDGET_FACTOR } from '../../sidecar/mux/frame-writer.js';
import { Session } from '../../sidecar/mux/index.js';
import { next, RawPeer, sessionPair, tlsPair } from './helpers.js';

const BUDGET_BYTES = 64 * 1024;
const PINGS_PER_WRITE = 4096;
/** 64 MiB of PINGs at most: far beyond kernel buffers plus the queue limit. */
const MAX_WRITES = 2048;

describe('a peer that does not read', () => {
  it('is disconnected with GOAWAY RESOURCE_EXHAUSTED once more than four budgets are queued', { timeout: 60_000 }, async () => {
    const { client, server } = await tlsPair();
    const acceptor = new Session(server, { role: 'acceptor', maxLinkBufferedBytes: BUDGET_BYTES });
    const closed = next<[MuxError]>(acceptor, 'close');
    client.pause();
    const encoder = new FrameEncoder();
    for (const buffer of encoder.encode({ type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65_536 })) client.write(buffer);
    let sessionClosed = false;
    void closed.then(() => (sessionClosed = true));
    let peakQueuedBytes = 0;
    for (let write = 0; write < MAX_WRITES && !sessionClosed; write += 1) {
      const pings = [];
      for (let i = 0; i < PINGS_PER_WRITE; i += 1) pings.push(...encoder.encode({ type: FrameType.PING, nonce: write * PINGS_PER_WRITE + i }));
      if (!client.write(Buffer.concat(pings))) await Promise.race([next(client, 'drain'), closed]);
      peakQueuedBytes = Math.max(peakQueuedBytes, acceptor.stats.bufferedBytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const [error] = await closed;
    assert.ok(error instanceof MuxError);
    assert.equal(error.code, 'TRELLIS_ERR_PEER_NOT_READING');
    assert.equal(error.wireCode, ErrorCode.RESOURCE_EXHAUSTED);
    assert.ok(peakQueuedBytes <= PEER_NOT_READING_BUDGET_FACTOR * BUDGET_BYTES + 64 * 1024, `at most one write past the limit was queued (${peakQueuedBytes} bytes)`);
    // Reading now, the peer finds its PONGs and then the GOAWAY.
    const peer = new RawPeer(client);
    client.resume();
    const goAway = (await peer.waitFor((frame) => frame.type === FrameType.GOAWAY)) as GoAwayFrame;
    assert.equal(goAway.code, ErrorCode.RESOURCE_EXHAUSTED);
    await peer.closed;
  });

  it('a peer that reads keeps its link through the same PINGs and a bulk transfer', { timeout: 60_000 }, async () => {
    const { dialer, acceptor } = sessionPair(await tlsPair(), { maxLinkBufferedBytes: BUDGET_BYTES }, {
      maxLinkBufferedBytes: BUDGET_BYTES,
      onStream: (stream) => {
        stream.on('data', (payload: Buffer) => stream.consumed(payload.length));
        stream.on('end', () => stream.end());
      },
    });
    let acceptorClosed = false;
    acceptor.once('close', () => (acceptorClosed = true));
    await dialer.whenReady();
    const rtts = await Promise.all(Array.from({ length: 20_000 }, () => dialer.ping()));
    assert.equal(rtts.length, 20_000);
    const stream = dialer.openStream('sink');
    const data = Buffer.alloc(8 * 1024 * 1024, 1);
    for (let offset = 0; offset < data.length; offset += 64 * 1024) {
      if (!stream.write(data.subarray(offset, offset + 64 * 1024))) await next(stream, 'drain', 'reset');
    }
    stream.end();
    await next(stream, 'close');
    assert.equal(acceptorClosed, false, 'the link survived');
    dialer.close();
    acceptor.close();
  });
});
