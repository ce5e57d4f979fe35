// An app that resets its connection must reach the peer as a reset, never as a clean end: libuv
// reports a reset that arrives together with data as an end (POLLHUP after a partial read), so a
// reset app looked like one that half-closed, and the far app took a truncated stream for whole.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { connect, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../proto/errors.js';
import { joinSocketToStream } from '../../sidecar/forward/join.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { sessionPair, streamInbox, tcpPair } from '../mux/helpers.js';

const observer = { bytes: (): void => undefined };

/**
 * A loopback connection whose ends stay half-open, as the sidecar's app sockets do. The
 * sidecar's end reads nothing until resumed (paused before it connects), so that what the app
 * sends meanwhile is queued in the kernel.
 */
async function halfOpenPair(): Promise<{ appSide: Socket; app: Socket }> {
  const server = createServer({ allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const appSide = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  appSide.pause();
  await once(appSide, 'connect');
  const [app] = (await accepted) as [Socket];
  server.close();
  return { appSide, app };
}

/** What the peer's end of the stream saw first: a FIN (`end`) or a reset (with its code). */
function firstEnding(stream: MuxStream): Promise<{ kind: 'end' } | { kind: 'reset'; code: number }> {
  return new Promise((resolve) => {
    stream.on('data', (payload: Buffer) => stream.consumed(payload.length));
    stream.once('end', () => resolve({ kind: 'end' }));
    stream.once('reset', (code: number) => resolve({ kind: 'reset', code }));
  });
}

describe('joining an app socket to a stream', () => {
  it('passes an app reset that arrived with data to the peer as a reset (a clean end without the fix)', async () => {
    const inbox = streamInbox();
    const sockets = await tcpPair();
    const { dialer, acceptor } = sessionPair(sockets, {}, { onStream: inbox.onStream });
    const { appSide, app } = await halfOpenPair();
    appSide.on('error', () => undefined);
    try {
      // The stream the sidecar forwards to the app is opened by the peer; here the acceptor's end is joined to the app.
      const peer = dialer.openStream('app');
      const { stream } = await inbox.nextStream();
      const ending = firstEnding(peer);
      // The sidecar is not reading when the app's bytes and its reset arrive, so both are queued together.
      joinSocketToStream(appSide, stream, observer);
      app.write(Buffer.alloc(1000, 7));
      await new Promise((resolve) => setTimeout(resolve, 20));
      app.resetAndDestroy();
      await once(app, 'close');
      await new Promise((resolve) => setTimeout(resolve, 80));
      appSide.resume();
      const result = await ending;
      assert.deepEqual(result, { kind: 'reset', code: ErrorCode.STREAM_ABORTED });
    } finally {
      appSide.destroy();
      dialer.close();
      acceptor.close();
    }
  });

  it('still passes an app that only half-closed as a FIN, and keeps the other direction open', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    const { appSide, app } = await halfOpenPair();
    try {
      const peer = dialer.openStream('app');
      const { stream } = await inbox.nextStream();
      const ending = firstEnding(peer);
      joinSocketToStream(appSide, stream, observer);
      app.end(Buffer.alloc(1000, 7));
      await new Promise((resolve) => setTimeout(resolve, 50));
      appSide.resume();
      assert.deepEqual(await ending, { kind: 'end' });
      // The app half-closed only: what the peer sends still reaches it.
      const received = once(app, 'data');
      peer.write(Buffer.from('after the FIN'));
      assert.equal(String((await received)[0]), 'after the FIN');
    } finally {
      appSide.destroy();
      app.destroy();
      dialer.close();
      acceptor.close();
    }
  });

  it('resets the app even when the peer\'s FIN and RESET arrive together, and frees its socket (EINVAL and a leaked descriptor without the fix)', { timeout: 15_000 }, async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });
    const { appSide, app } = await halfOpenPair();
    const appSideErrors: string[] = [];
    appSide.on('error', (error: NodeJS.ErrnoException) => appSideErrors.push(error.code ?? error.message));
    const appErrors: string[] = [];
    app.on('error', (error: NodeJS.ErrnoException) => appErrors.push(error.code ?? error.message));
    app.on('data', () => undefined);
    const appEnded = once(app, 'end');
    const appClosed = new Promise((resolve) => app.once('close', resolve));
    try {
      const peer = dialer.openStream('app');
      const { stream } = await inbox.nextStream();
      joinSocketToStream(appSide, stream, observer);
      appSide.resume();
      // One chunk on the link: the sidecar ends the app socket and, in the same turn, resets it.
      const reset = once(stream, 'reset');
      peer.end();
      peer.reset(ErrorCode.STREAM_ABORTED, 'gone');
      await reset;
      await once(appSide, 'close');
      assert.deepEqual(appSideErrors, [], 'no EINVAL from a reset refused by libuv');
      // The app read the FIN, then the RST. Having read its EOF it hears of the reset on its next
      // write: EPIPE at once (Linux records a reset in CLOSE_WAIT so), where after a plain close
      // that first write would have gone out.
      await appEnded;
      app.write('after the reset');
      await appClosed;
      assert.deepEqual(appErrors, ['EPIPE']);
    } finally {
      appSide.destroy();
      app.destroy();
      dialer.close();
      acceptor.close();
    }
  });
});
