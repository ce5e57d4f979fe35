// A link this sidecar dialled counts a peer that stops reading as a protocol violation, as an
// accepted link does (one rule for both, isPeerViolation).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { FrameEncoder, FrameType } from '../../proto/index.js';
import { LinkManager } from '../../sidecar/links/link-manager.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import { next, tcpPair } from '../mux/helpers.js';

const PINGS_PER_WRITE = 4096;
/** 128 MiB of PINGs at most: far beyond the 4 MiB queue limit and kernel buffers. */
const MAX_WRITES = 4096;

describe('link manager', () => {
  it('counts TRELLIS_ERR_PEER_NOT_READING on a dialled link', { timeout: 120_000 }, async () => {
    const { client, server } = await tcpPair();
    const metrics = new PrometheusSidecarMetrics({ service: 'web' });
    const links = new LinkManager({
      dialer: { dial: () => Promise.resolve({ socket: client, peer: { kind: 'service', service: 'api' }, peerId: 'sc-api', peerAddress: 'api' }) },
      metrics,
      logger: pino({ level: 'silent' }),
    });
    const session = await links.sessionFor({ address: '127.0.0.1:1', peer: { kind: 'service', service: 'api' } });
    const closed = next(session, 'close');
    let sessionClosed = false;
    void closed.then(() => (sessionClosed = true));
    // The peer: HELLO, then PINGs, and never a read of the PONGs.
    server.pause();
    const encoder = new FrameEncoder();
    for (const buffer of encoder.encode({ type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65_536 })) server.write(buffer);
    for (let write = 0; write < MAX_WRITES && !sessionClosed; write += 1) {
      const pings = [];
      for (let i = 0; i < PINGS_PER_WRITE; i += 1) pings.push(...encoder.encode({ type: FrameType.PING, nonce: (write * PINGS_PER_WRITE + i) % 0x7fffffff }));
      if (!server.write(Buffer.concat(pings))) await Promise.race([next(server, 'drain'), closed]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await closed;
    const { body } = await metrics.render();
    const line = body.split('\n').find((l) => l.startsWith('trellis_sidecar_protocol_violations_total{') && l.includes('code="TRELLIS_ERR_PEER_NOT_READING"'));
    assert.equal(line?.split(' ').at(-1), '1', body.split('\n').filter((l) => l.includes('violations')).join('\n'));
    links.close();
    server.destroy();
  });
});
