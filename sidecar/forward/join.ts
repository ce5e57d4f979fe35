import type { Socket } from 'node:net';
import { ErrorCode } from '../../proto/errors.js';
import type { MuxStream } from '../mux/index.js';
import type { OpenReplay, ReplayedOpening } from './open-replay.js';

const EMPTY = Buffer.alloc(0);
/** How long a reset waits for the app socket's queued FIN to leave before it closes it plainly. */
export const RESET_AFTER_FIN_BOUND_MS = 2_000;

/** Counters the forwarding core reports to; the metrics adapter implements it. */
export interface ForwardObserver {
  /** Bytes from the app onto the stream (`out`) or from the stream to the app (`in`). */
  bytes(direction: 'in' | 'out', count: number): void;
}

/** How {@link joinSocketToStream} treats the two sides. */
export interface JoinOptions {
  /**
   * The socket is still connecting to the app: a failure to connect is reported to the peer as
   * APP_UNREACHABLE rather than STREAM_ABORTED.
   */
  appConnecting?: boolean;
  /** The app's FIN was read already (by an earlier join): the caller ends the stream. */
  appEnded?: boolean;
  /**
   * Keeps what the app sends until the peer answers. A refusal at open that it can undo
   * (`OpenReplay.refusedAtOpen`) leaves the socket paused, unjoined and open, and hands the
   * app's bytes to `onRefusedAtOpen`, which opens the next stream.
   */
  replay?: { record: OpenReplay; onRefusedAtOpen: (opening: ReplayedOpening) => void };
}

/**
 * Joins an app socket to a stream, both ways, without copying payloads.
 *
 * Backpressure: when the stream has no credit left, the app socket is paused until the
 * stream drains; when the app socket is slow to take bytes, credit is withheld from the peer
 * (only this stream waits, never the link). Half-closes cross as FIN and `end()`; a reset or
 * socket error on one side aborts the other, so no byte is silently lost.
 */
export function joinSocketToStream(socket: Socket, stream: MuxStream, observer: ForwardObserver, options: JoinOptions = {}): void {
  const { replay } = options;
  let connecting = options.appConnecting === true;
  let unconsumedBytes = 0;
  let appFinished = options.appEnded === true;
  let peerFinished = false;
  /** The stream was refused at open and the socket handed back (see `JoinOptions.replay`). */
  let detached = false;

  if (connecting) socket.once('connect', () => (connecting = false));

  const onAppData = (chunk: Buffer): void => {
    observer.bytes('out', chunk.length);
    replay?.record.record(chunk);
    if (!stream.write(chunk)) socket.pause();
  };
  const onAppEnd = (): void => {
    appFinished = true;
    replay?.record.recordAppEnd();
    if (socket.writableEnded) {
      stream.end();
      return;
    }
    // libuv reports a reset that arrives together with data as an end (POLLHUP after a partial
    // read) and never reads the error, so an app that reset would reach the peer as a clean,
    // truncated FIN. A write of zero bytes fetches the error (ECONNRESET: the 'error' handler
    // resets the stream) and succeeds on a connection the app only half-closed.
    socket.write(EMPTY, (error) => {
      if (!detached && (error === undefined || error === null)) stream.end();
    });
  };
  const onAppDrain = (): void => {
    if (unconsumedBytes > 0) {
      stream.consumed(unconsumedBytes);
      unconsumedBytes = 0;
    }
  };
  const onAppError = (error: NodeJS.ErrnoException): void => {
    const code = connecting ? ErrorCode.APP_UNREACHABLE : ErrorCode.STREAM_ABORTED;
    stream.reset(code, connecting ? `app unreachable: ${error.code ?? error.message}` : `app socket: ${error.code ?? error.message}`);
  };
  const onAppClose = (): void => {
    // A socket that closes before both directions finished was aborted: say so to the peer
    // rather than let it take a truncated stream for a complete one.
    if (!(appFinished && peerFinished) && stream.state !== 'closed') {
      stream.reset(ErrorCode.STREAM_ABORTED, 'app socket closed');
    }
  };
  socket.on('data', onAppData);
  socket.on('end', onAppEnd);
  socket.on('drain', onAppDrain);
  socket.on('error', onAppError);
  socket.on('close', onAppClose);

  stream.on('drain', () => socket.resume());
  // Payloads for the app are gathered until the end of the event loop's I/O phase and leave in
  // one vectored write: TLS hands them over one record (16 KiB) at a time, and a write per
  // record cost a syscall and a wakeup of the app each (the receiving sidecar's CPU per GiB
  // fell by a quarter; bench/NOTES.md). Flow control is unchanged: a corked socket's
  // write() returns false past its high-water mark and credit waits for 'drain'.
  let corked = false;
  const uncork = (): void => {
    corked = false;
    socket.uncork();
  };
  stream.on('data', (payload: Buffer) => {
    observer.bytes('in', payload.length);
    if (!corked) {
      corked = true;
      socket.cork();
      setImmediate(uncork);
    }
    if (socket.write(payload)) {
      stream.consumed(payload.length + unconsumedBytes);
      unconsumedBytes = 0;
    } else {
      unconsumedBytes += payload.length;
    }
  });
  stream.on('end', () => {
    peerFinished = true;
    socket.end();
  });
  stream.on('reset', (code: number, _message: string, local: boolean) => {
    if (replay === undefined || !replay.record.refusedAtOpen(code, local)) {
      resetAppSocket(socket);
      return;
    }
    detached = true;
    socket.pause();
    socket.off('data', onAppData);
    socket.off('end', onAppEnd);
    socket.off('drain', onAppDrain);
    socket.off('error', onAppError);
    socket.off('close', onAppClose);
    replay.onRefusedAtOpen(replay.record.take());
  });
  // Bytes or a FIN from the peer: its app has the stream, nothing may be sent twice.
  if (replay !== undefined) onFirstAnswer(stream, () => replay.record.settle());
}

/**
 * Calls `onAnswer` at the peer's first bytes or its FIN, whichever comes first, and then drops
 * both listeners (two `once` listeners would leave the one that did not fire, wrapper and all,
 * on every stream that stays open).
 */
export function onFirstAnswer(stream: MuxStream, onAnswer: () => void): void {
  const answered = (): void => {
    stream.off('data', answered);
    stream.off('end', answered);
    onAnswer();
  };
  stream.on('data', answered);
  stream.on('end', answered);
}

/**
 * Resets the app's connection (a TCP RST, so the app hears of it). With this end's FIN still on
 * its way out (end() called, the shutdown not done), libuv refuses the reset (EINVAL) and Node
 * then leaves the descriptor open and the app untold: the reset waits until the FIN is out, and
 * a FIN that cannot leave (an app that reads nothing) gets a plain close after a bound.
 */
export function resetAppSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (!socket.writableEnded || socket.writableFinished) {
    socket.resetAndDestroy();
    return;
  }
  const fallback = setTimeout(() => socket.destroy(), RESET_AFTER_FIN_BOUND_MS);
  fallback.unref();
  socket.on('finish', () => {
    clearTimeout(fallback);
    if (!socket.destroyed) socket.resetAndDestroy();
  });
}
