/**
 * Many streams on one link: per-stream memory stays small and the stream limit holds.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ErrorCode } from '../../proto/index.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { next, sessionPair, tcpPair } from './helpers.js';

const STREAM_COUNT = 10_000;

/** A full garbage collection, so heap deltas measure live objects only. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('mux at scale', () => {
  it(`holds ${STREAM_COUNT} open streams on one link in well under 200 MB, and refuses one more`, async (t) => {
    const sockets = await tcpPair();
    collectGarbage();
    const heapBeforeBytes = process.memoryUsage().heapUsed;

    const payload = Buffer.alloc(1024, 7);
    const accepted: MuxStream[] = [];
    let deliveredBytes = 0;
    let allDelivered = (): void => {};
    const delivered = new Promise<void>((resolve) => (allDelivered = resolve));
    const { dialer, acceptor } = sessionPair(sockets, {}, {
      onStream: (stream) => {
        accepted.push(stream);
        stream.on('data', (data: Buffer) => {
          deliveredBytes += data.length;
          if (deliveredBytes === STREAM_COUNT * payload.length) allDelivered();
        });
      },
    });
    const streams: MuxStream[] = [];
    for (let index = 0; index < STREAM_COUNT; index++) {
      const stream = dialer.openStream('svc');
      stream.write(payload);
      streams.push(stream);
    }
    await delivered;
    // The default limit is 10,000: one more is refused.
    const [code, , local] = await next<[number, string, boolean]>(dialer.openStream('svc'), 'reset');
    assert.equal(code, ErrorCode.RESOURCE_EXHAUSTED);
    assert.equal(local, false);
    assert.equal(accepted.length, STREAM_COUNT);
    assert.equal(dialer.stats.activeStreams, STREAM_COUNT);
    assert.equal(acceptor.stats.activeStreams, STREAM_COUNT);

    collectGarbage();
    const heapGrowthBytes = process.memoryUsage().heapUsed - heapBeforeBytes;
    // Both ends of every stream live in this process.
    t.diagnostic(`heap growth for ${STREAM_COUNT} streams, both ends: ${(heapGrowthBytes / 1e6).toFixed(1)} MB (${Math.round(heapGrowthBytes / STREAM_COUNT / 2)} bytes per stream end)`);
    assert.ok(heapGrowthBytes < 50 * 1024 * 1024, `${heapGrowthBytes} bytes`);
    dialer.close();
    acceptor.close();
  });
});
