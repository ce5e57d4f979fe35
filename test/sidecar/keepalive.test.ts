import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameType } from '../../proto/index.js';
import type { TrellisError } from '../../proto/index.js';
import { keepAlive } from '../../sidecar/links/keepalive.js';
import { Session } from '../../sidecar/mux/index.js';
import { next, RawPeer, tcpPair } from '../mux/helpers.js';

const HELLO = { type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65536 } as const;

describe('link keepalive', () => {
  it('measures RTT while the peer answers, and closes the link when PONGs stop', async () => {
    const sockets = await tcpPair();
    const session = new Session(sockets.client, { role: 'dialer' });
    const peer = new RawPeer(sockets.server);
    peer.send(HELLO);
    const rtts: number[] = [];
    let answering = true;
    const answered = new Promise<void>((resolve) => {
      sockets.server.on('data', () => {
        for (const frame of peer.frames.splice(0)) {
          if (frame.type !== FrameType.PING || !answering) continue;
          peer.send({ type: FrameType.PONG, nonce: frame.nonce });
        }
        if (rtts.length >= 2) resolve();
      });
    });
    keepAlive(session, { intervalMs: 20, timeoutMs: 100, onRtt: (rttMs) => rtts.push(rttMs) });
    await answered;
    assert.ok(rtts.every((rtt) => rtt >= 0));
    const started = Date.now();
    answering = false;
    const [error] = await next<[TrellisError | undefined]>(session, 'close');
    assert.equal(error?.code, 'TRELLIS_ERR_PING_TIMEOUT');
    assert.ok(Date.now() - started < 1000, 'the dead link is noticed within the timeout, not minutes later');
    await peer.closed;
  });
});
