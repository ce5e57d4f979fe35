/**
 * Stream and session lifecycles between two sessions: resets, GOAWAY drains, closes, pings,
 * stream limits and misuse.
 */

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ErrorCode, PROTOCOL_MAX_VERSION } from '../../proto/index.js';
import type { TrellisError } from '../../proto/index.js';
import { next, receiveAll, sendAll, sessionPair, sha256, streamInbox, tcpPair } from './helpers.js';

type ResetArgs = [code: number, message: string, local: boolean];

describe('mux stream and session lifecycle', () => {
  it('propagates RESET with its code both ways', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });

    const denied = dialer.openStream('denied');
    const deniedRemote = next<ResetArgs>(denied, 'reset');
    const deniedClosed = next(denied, 'close');
    const { stream: deniedAccepted } = await inbox.nextStream();
    const deniedLocal = next<ResetArgs>(deniedAccepted, 'reset');
    deniedAccepted.reset(ErrorCode.POLICY_DENIED, 'not allowed');
    assert.deepEqual(await deniedLocal, [ErrorCode.POLICY_DENIED, 'not allowed', true]);
    assert.deepEqual(await deniedRemote, [ErrorCode.POLICY_DENIED, 'not allowed', false]);
    await deniedClosed;
    assert.equal(denied.state, 'closed');
    assert.equal(denied.closed, true);

    const aborted = dialer.openStream('aborted');
    aborted.write(Buffer.from('some bytes'));
    const { stream: abortedAccepted } = await inbox.nextStream();
    const abortedRemote = next<ResetArgs>(abortedAccepted, 'reset');
    aborted.reset(ErrorCode.APP_UNREACHABLE, 'no app');
    assert.deepEqual(await abortedRemote, [ErrorCode.APP_UNREACHABLE, 'no app', false]);
    assert.equal(aborted.write(Buffer.from('dropped')), false, 'bytes after a reset are dropped');
    aborted.reset(ErrorCode.INTERNAL_ERROR);
    aborted.end();
    assert.equal(dialer.stats.activeStreams, 0);
    assert.equal(acceptor.stats.activeStreams, 0);
    dialer.close();
    acceptor.close();
  });

  it('lets existing streams finish after GOAWAY, refuses new ones, then closes cleanly', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    const existing = dialer.openStream('existing');
    const { stream: existingAccepted, received: upload } = await inbox.nextStream();
    const dialerGoAway = next<[number, string]>(dialer, 'goaway');
    const dialerClosed = next<[TrellisError | undefined]>(dialer, 'close');
    const acceptorClosed = next<[TrellisError | undefined]>(acceptor, 'close');

    acceptor.goAway(ErrorCode.NONE, 'draining');
    // Opened before the GOAWAY arrives: it crosses it and is refused.
    const crossing = dialer.openStream('crossing');
    const crossingReset = next<ResetArgs>(crossing, 'reset');
    assert.throws(() => acceptor.openStream('svc'), { code: 'TRELLIS_ERR_GOING_AWAY' });
    assert.deepEqual(await dialerGoAway, [ErrorCode.NONE, 'draining']);
    assert.throws(() => dialer.openStream('svc'), { code: 'TRELLIS_ERR_GOING_AWAY' });
    assert.deepEqual(await crossingReset, [ErrorCode.GOING_AWAY, 'the link is going away', false]);

    // The stream that was open before the GOAWAY still carries bytes both ways.
    const data = randomBytes(2 * 1024 * 1024);
    const download = receiveAll(existing);
    await sendAll(existing, data);
    assert.equal((await upload).sha256, sha256(data));
    await sendAll(existingAccepted, data);
    assert.equal((await download).sha256, sha256(data));

    assert.deepEqual(await dialerClosed, [undefined]);
    assert.deepEqual(await acceptorClosed, [undefined]);
  });

  it('a GOAWAY sender with no streams left answers an OPEN that crossed its GOAWAY before it closes the link', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    await next(dialer, 'ready');
    const dialerClosed = next<[TrellisError | undefined]>(dialer, 'close');
    const acceptorClosed = next<[TrellisError | undefined]>(acceptor, 'close');
    acceptor.goAway(ErrorCode.NONE, 'draining');
    // Sent before the GOAWAY arrives. Had the acceptor closed at once (it has no stream), this
    // stream would be cut off unanswered (STREAM_ABORTED here), and its opener could not know
    // that it reached no app.
    const crossing = dialer.openStream('crossing');
    assert.deepEqual(await next<ResetArgs>(crossing, 'reset'), [ErrorCode.GOING_AWAY, 'the link is going away', false]);
    assert.deepEqual(await acceptorClosed, [undefined]);
    assert.deepEqual(await dialerClosed, [undefined]);
  });

  it('close() aborts every stream on both ends', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    const stream = dialer.openStream('svc');
    const { stream: accepted } = await inbox.nextStream();
    const localReset = next<ResetArgs>(stream, 'reset');
    const remoteReset = next<ResetArgs>(accepted, 'reset');
    const acceptorClosed = next<[TrellisError | undefined]>(acceptor, 'close');
    const pingFailed = assert.rejects(dialer.ping(), { code: 'TRELLIS_ERR_SESSION_CLOSED' });
    dialer.close();

    const [localCode, , localFlag] = await localReset;
    assert.equal(localCode, ErrorCode.STREAM_ABORTED);
    assert.equal(localFlag, true);
    const [remoteCode, , remoteLocal] = await remoteReset;
    assert.equal(remoteCode, ErrorCode.STREAM_ABORTED);
    assert.equal(remoteLocal, true, 'the link dropped under the acceptor: its own end aborted the stream');
    const [acceptorError] = await acceptorClosed;
    assert.equal(acceptorError?.code, 'TRELLIS_ERR_LINK_CLOSED');
    await pingFailed;
    assert.throws(() => dialer.openStream('svc'), { code: 'TRELLIS_ERR_SESSION_CLOSED' });
    await assert.rejects(dialer.ping(), { code: 'TRELLIS_ERR_SESSION_CLOSED' });
  });

  it('measures the round-trip time with ping()', async () => {
    const { dialer, acceptor } = sessionPair(await tcpPair());
    const rttMs = await dialer.ping();
    assert.ok(rttMs >= 0 && rttMs < 5_000);
    assert.equal(dialer.stats.rttMs, rttMs);
    assert.equal(dialer.stats.negotiatedVersion, PROTOCOL_MAX_VERSION);
    assert.ok((await acceptor.ping()) >= 0);
    dialer.close();
    acceptor.close();
  });

  it('refuses streams beyond maxConcurrentStreams with RESOURCE_EXHAUSTED', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { maxConcurrentStreams: 2, onStream: inbox.onStream });
    dialer.openStream('a');
    dialer.openStream('b');
    const third = dialer.openStream('c');
    const [code, , local] = await next<ResetArgs>(third, 'reset');
    assert.equal(code, ErrorCode.RESOURCE_EXHAUSTED);
    assert.equal(local, false);
    const { stream: first } = await inbox.nextStream();
    await inbox.nextStream();
    assert.equal(acceptor.stats.openedStreams, 2);

    // A slot frees when a stream closes.
    const closed = next(first, 'close');
    first.reset(ErrorCode.STREAM_ABORTED);
    await closed;
    const fourth = dialer.openStream('d');
    assert.equal((await inbox.nextStream()).stream.id, fourth.id);
    dialer.close();
    acceptor.close();
  });

  it('holds streams opened before the HELLO exchange until it completes', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    const stream = dialer.openStream('early');
    const data = randomBytes(600 * 1024);
    assert.equal(stream.write(data), false, 'no credit before the peer\'s HELLO');
    stream.end();
    assert.ok(dialer.stats.bufferedBytes > 0);
    await next(dialer, 'ready');
    assert.equal((await (await inbox.nextStream()).received).sha256, sha256(data));
    dialer.close();
    acceptor.close();
  });

  it('rejects misuse: write after end, invalid service names, listeners that throw', async () => {
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, {
      onStream: () => {
        throw new Error('app bug');
      },
    });
    assert.throws(() => dialer.openStream('Not A Service!'), { code: 'TRELLIS_ERR_BAD_FIELD' });
    const stream = dialer.openStream('svc');
    stream.end();
    assert.throws(() => stream.write(Buffer.from('late')), { code: 'TRELLIS_ERR_STREAM_CLOSED' });

    const [acceptorError] = await next<[TrellisError | undefined]>(acceptor, 'close');
    assert.equal(acceptorError?.code, 'TRELLIS_ERR_INTERNAL');
    const [dialerError] = await next<[TrellisError & { wireCode?: number }]>(dialer, 'close');
    assert.equal(dialerError.code, 'TRELLIS_ERR_PEER_GOAWAY');
    assert.equal(dialerError.wireCode, ErrorCode.INTERNAL_ERROR);
  });
});
