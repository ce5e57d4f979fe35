/**
 * A peer that breaks the protocol (written by hand with the frame encoder) gets a GOAWAY with
 * the right wire code and is disconnected; late frames of streams reset here are tolerated.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, FrameType, PROTOCOL_MAX_VERSION, ProtocolError } from '../../proto/index.js';
import type { Frame, GoAwayFrame, TrellisError } from '../../proto/index.js';
import { MuxError, Session } from '../../sidecar/mux/index.js';
import type { SessionInit } from '../../sidecar/mux/index.js';
import { next, RawPeer, tcpPair } from './helpers.js';

const HELLO: Frame = { type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 64 * 1024 };

/** An acceptor session facing a raw peer, and the promise of the session's 'close' error. */
async function sessionFacingRawPeer(init: Partial<SessionInit> = {}): Promise<{ session: Session; peer: RawPeer; closed: Promise<TrellisError | undefined> }> {
  const sockets = await tcpPair();
  const session = new Session(sockets.server, { onStream: () => {}, ...init, role: 'acceptor' });
  const closed = next<[TrellisError | undefined]>(session, 'close').then(([error]) => error);
  return { session, peer: new RawPeer(sockets.client), closed };
}

/** Waits for the session's GOAWAY and the end of the connection; returns the GOAWAY. */
async function goAwayAndDisconnect(peer: RawPeer): Promise<GoAwayFrame> {
  const goAway = (await peer.waitFor((frame) => frame.type === FrameType.GOAWAY)) as GoAwayFrame;
  await peer.closed;
  return goAway;
}

describe('mux protocol violations', () => {
  it('disconnects a peer that sends more DATA than its credit with FLOW_CONTROL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer({ initialWindowBytes: 1024 });
    // Each frame fits the window; together they exceed it.
    peer.send(
      HELLO,
      { type: FrameType.OPEN, streamId: 1, service: 'svc' },
      { type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(800) },
      { type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(800) },
    );
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.FLOW_CONTROL_ERROR);
    const error = await closed;
    assert.ok(error instanceof ProtocolError);
    assert.equal(error.code, 'TRELLIS_ERR_FLOW_CONTROL');
  });

  it('answers an OPEN with this end\'s parity with PROTOCOL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    peer.send(HELLO, { type: FrameType.OPEN, streamId: 2, service: 'svc' });
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_STREAM_ID');
  });

  it('answers an OPEN that reuses a stream id with PROTOCOL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    const open: Frame = { type: FrameType.OPEN, streamId: 3, service: 'svc' };
    peer.send(HELLO, open, { type: FrameType.RESET, streamId: 3, code: ErrorCode.STREAM_ABORTED, message: '' }, open);
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_STREAM_ID');
  });

  it('answers DATA on a stream that was never opened with PROTOCOL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    peer.send(HELLO, { type: FrameType.DATA, streamId: 7, payload: Buffer.from('hi') });
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_STREAM_ID');
  });

  it('answers an HTTP request on the link with FRAME_TOO_LARGE', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    peer.socket.write('GET / HTTP/1.1\r\nHost: example\r\n\r\n');
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.FRAME_TOO_LARGE);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_HEADER_TOO_LARGE');
  });

  it('answers a header that is not msgpack with PROTOCOL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    peer.socket.write(Buffer.from([0x00, 0x03, 0xc1, 0xc1, 0xc1]));
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_BAD_HEADER');
  });

  it('answers a frame before HELLO with PROTOCOL_ERROR', async () => {
    const { peer, closed } = await sessionFacingRawPeer();
    peer.send({ type: FrameType.PING, nonce: 1 });
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_UNEXPECTED_FRAME');
  });

  it('closes a link whose HELLO does not come within helloTimeoutMs', async () => {
    const { session, peer, closed } = await sessionFacingRawPeer({ helloTimeoutMs: 50 });
    const hello = await peer.waitFor((frame) => frame.type === FrameType.HELLO);
    assert.deepEqual(hello, { type: FrameType.HELLO, minVersion: 1, maxVersion: PROTOCOL_MAX_VERSION, initialWindowBytes: 256 * 1024 });
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
    const error = await closed;
    assert.ok(error instanceof MuxError);
    assert.equal(error.code, 'TRELLIS_ERR_HELLO_TIMEOUT');
    assert.throws(() => session.openStream('svc'), { code: 'TRELLIS_ERR_SESSION_CLOSED' });
  });

  it('refuses a peer with no shared version with UNSUPPORTED_VERSION', async () => {
    const { session, peer, closed } = await sessionFacingRawPeer();
    peer.send({ type: FrameType.HELLO, minVersion: 50, maxVersion: 60, initialWindowBytes: 1024 });
    assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.UNSUPPORTED_VERSION);
    assert.equal((await closed)?.code, 'TRELLIS_ERR_UNSUPPORTED_VERSION');
    assert.equal(session.stats.negotiatedVersion, undefined);
  });

  it('closes the session when the peer sends an error GOAWAY', async () => {
    const { session, peer, closed } = await sessionFacingRawPeer();
    const goAway = next<[number, string]>(session, 'goaway');
    peer.send(HELLO, { type: FrameType.GOAWAY, code: ErrorCode.INTERNAL_ERROR, message: 'bye' });
    assert.deepEqual(await goAway, [ErrorCode.INTERNAL_ERROR, 'bye']);
    const error = await closed;
    assert.ok(error instanceof MuxError);
    assert.equal(error.code, 'TRELLIS_ERR_PEER_GOAWAY');
    assert.equal(error.wireCode, ErrorCode.INTERNAL_ERROR);
    await peer.closed;
  });

  it('ignores frames that crossed a reset or a refusal, and keeps the link up', async () => {
    let closedEarly = false;
    const { session, peer } = await sessionFacingRawPeer({
      maxConcurrentStreams: 1,
      onStream: (stream) => {
        // The app refuses stream 1; stream 3 stays open and fills the limit.
        if (stream.id === 1) stream.reset(ErrorCode.POLICY_DENIED, 'denied');
      },
    });
    session.on('close', () => (closedEarly = true));
    peer.send(
      HELLO,
      { type: FrameType.OPEN, streamId: 1, service: 'svc' },
      { type: FrameType.DATA, streamId: 1, payload: Buffer.from('late') },
      { type: FrameType.FIN, streamId: 1 },
      { type: FrameType.OPEN, streamId: 3, service: 'svc' },
      { type: FrameType.OPEN, streamId: 5, service: 'svc' },
      { type: FrameType.DATA, streamId: 5, payload: Buffer.from('late') },
      { type: FrameType.WINDOW, streamId: 5, creditBytes: 10 },
      { type: FrameType.PING, nonce: 42 },
    );
    const reset1 = await peer.waitFor((frame) => frame.type === FrameType.RESET && frame.streamId === 1);
    assert.deepEqual(reset1, { type: FrameType.RESET, streamId: 1, code: ErrorCode.POLICY_DENIED, message: 'denied' });
    const reset5 = await peer.waitFor((frame) => frame.type === FrameType.RESET && frame.streamId === 5);
    assert.equal(reset5.type === FrameType.RESET && reset5.code, ErrorCode.RESOURCE_EXHAUSTED);
    await peer.waitFor((frame) => frame.type === FrameType.PONG && frame.nonce === 42);
    assert.equal(session.stats.activeStreams, 1);
    assert.equal(session.stats.openedStreams, 2);
    assert.equal(closedEarly, false, 'the link is still up');
    session.close();
  });

  it('answers WINDOW, RESET or FIN on a stream that was never opened with PROTOCOL_ERROR', async () => {
    const neverOpened: Frame[] = [
      { type: FrameType.WINDOW, streamId: 9, creditBytes: 10 },
      { type: FrameType.RESET, streamId: 9, code: ErrorCode.STREAM_ABORTED, message: '' },
      { type: FrameType.FIN, streamId: 9 },
      // Of this end's parity, above every id it opened.
      { type: FrameType.WINDOW, streamId: 4, creditBytes: 10 },
    ];
    for (const frame of neverOpened) {
      const { peer, closed } = await sessionFacingRawPeer();
      peer.send(HELLO, frame);
      assert.equal((await goAwayAndDisconnect(peer)).code, ErrorCode.PROTOCOL_ERROR);
      assert.equal((await closed)?.code, 'TRELLIS_ERR_STREAM_ID');
    }
  });

  it('resets only the stream that gets DATA or a FIN after its FIN, and keeps the link up', async () => {
    let closedEarly = false;
    const { session, peer } = await sessionFacingRawPeer({ onStream: (stream) => stream.on('data', (payload: Buffer) => stream.consumed(payload.length)) });
    session.on('close', () => (closedEarly = true));
    peer.send(
      HELLO,
      { type: FrameType.OPEN, streamId: 1, service: 'svc' },
      { type: FrameType.FIN, streamId: 1 },
      { type: FrameType.DATA, streamId: 1, payload: Buffer.from('after FIN') },
      { type: FrameType.OPEN, streamId: 3, service: 'svc' },
      { type: FrameType.FIN, streamId: 3 },
      { type: FrameType.FIN, streamId: 3 },
      { type: FrameType.PING, nonce: 7 },
    );
    for (const streamId of [1, 3]) {
      const reset = await peer.waitFor((frame) => frame.type === FrameType.RESET && frame.streamId === streamId);
      assert.equal(reset.type === FrameType.RESET && reset.code, ErrorCode.PROTOCOL_ERROR);
    }
    await peer.waitFor((frame) => frame.type === FrameType.PONG && frame.nonce === 7);
    assert.equal(closedEarly, false, 'the link is still up');
    session.close();
  });

  it('resets a stream that gets DATA after both ends\' FINs ended it', async () => {
    const { session, peer } = await sessionFacingRawPeer({ onStream: (stream) => stream.end() });
    peer.send(HELLO, { type: FrameType.OPEN, streamId: 1, service: 'svc' }, { type: FrameType.FIN, streamId: 1 });
    await peer.waitFor((frame) => frame.type === FrameType.FIN && frame.streamId === 1);
    peer.send({ type: FrameType.DATA, streamId: 1, payload: Buffer.from('late') }, { type: FrameType.WINDOW, streamId: 1, creditBytes: 5 }, { type: FrameType.PING, nonce: 8 });
    const reset = await peer.waitFor((frame) => frame.type === FrameType.RESET && frame.streamId === 1);
    assert.equal(reset.type === FrameType.RESET && reset.code, ErrorCode.PROTOCOL_ERROR);
    await peer.waitFor((frame) => frame.type === FrameType.PONG && frame.nonce === 8);
    assert.equal(session.stats.activeStreams, 0);
    session.close();
  });
});
