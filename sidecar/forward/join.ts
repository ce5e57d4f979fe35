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

/** Where a joined socket and its stream keep their join, for the shared listeners below. */
const JOIN = Symbol('trellis.join');
type Joined<T> = T & { [JOIN]: SocketStreamJoin };

/**
 * Joins an app socket to a stream, both ways, without copying payloads.
 *
 * Backpressure: when the stream has no credit left, the app socket is paused until the
 * stream drains; when the app socket is slow to take bytes, credit is withheld from the peer
 * (only this stream waits, never the link). Half-closes cross as FIN and `end()`; a reset or
 * socket error on one side aborts the other, so no byte is silently lost.
 */
export function joinSocketToStream(socket: Socket, stream: MuxStream, observer: ForwardObserver, options: JoinOptions = {}): void {
  const join = new SocketStreamJoin(socket, stream, observer, options);
  (socket as Joined<Socket>)[JOIN] = join;
  (stream as Joined<MuxStream>)[JOIN] = join;
  if (options.appConnecting === true) socket.once('connect', onAppConnect);
  socket.on('data', onAppData);
  socket.on('end', onAppEnd);
  socket.on('drain', onAppDrain);
  socket.on('error', onAppError);
  socket.on('close', onAppClose);
  stream.on('drain', onStreamDrain);
  stream.on('data', onStreamData);
  stream.on('end', onStreamEnd);
  stream.on('reset', onStreamReset);
  // Bytes or a FIN from the peer: its app has the stream, nothing may be sent twice.
  const { replay } = options;
  if (replay !== undefined) onFirstAnswer(stream, () => replay.record.settle());
}

// The listeners are the same functions for every join, and find theirs through the emitter
// (`this`): with 10,000 streams open, a closure per listener and join was megabytes of heap
// (bench/NOTES.md). A socket joined again after a refusal (JoinOptions.replay) holds its new join.
function onAppConnect(this: Joined<Socket>): void {
  this[JOIN].appConnected();
}
function onAppData(this: Joined<Socket>, chunk: Buffer): void {
  this[JOIN].appData(chunk);
}
function onAppEnd(this: Joined<Socket>): void {
  this[JOIN].appEnd();
}
function onAppDrain(this: Joined<Socket>): void {
  this[JOIN].appDrain();
}
function onAppError(this: Joined<Socket>, error: NodeJS.ErrnoException): void {
  this[JOIN].appError(error);
}
function onAppClose(this: Joined<Socket>): void {
  this[JOIN].appClose();
}
function onStreamDrain(this: Joined<MuxStream>): void {
  this[JOIN].streamDrain();
}
function onStreamData(this: Joined<MuxStream>, payload: Buffer): void {
  this[JOIN].streamData(payload);
}
function onStreamEnd(this: Joined<MuxStream>): void {
  this[JOIN].streamEnd();
}
function onStreamReset(this: Joined<MuxStream>, code: number, _message: string, local: boolean): void {
  this[JOIN].streamReset(code, local);
}
function uncorkJoin(join: SocketStreamJoin): void {
  join.uncork();
}

/** One app socket joined to one stream: the state both directions share. */
class SocketStreamJoin {
  readonly #socket: Socket;
  readonly #stream: MuxStream;
  readonly #observer: ForwardObserver;
  readonly #options: JoinOptions;
  /** The socket is still connecting to the app (see `JoinOptions.appConnecting`). */
  #connecting: boolean;
  /** The app socket is corked until the end of this event-loop turn's I/O phase. */
  #corked = false;
  /** Bytes written to the app that it has not taken yet: their credit waits for its 'drain'. */
  #unconsumedBytes = 0;
  #appFinished: boolean;
  #peerFinished = false;
  /** The stream was refused at open and the socket handed back (see `JoinOptions.replay`). */
  #detached = false;

  constructor(socket: Socket, stream: MuxStream, observer: ForwardObserver, options: JoinOptions) {
    this.#socket = socket;
    this.#stream = stream;
    this.#observer = observer;
    this.#options = options;
    this.#connecting = options.appConnecting === true;
    this.#appFinished = options.appEnded === true;
  }

  appConnected(): void {
    this.#connecting = false;
  }

  uncork(): void {
    this.#corked = false;
    this.#socket.uncork();
  }

  streamDrain(): void {
    this.#socket.resume();
  }

  appData(chunk: Buffer): void {
    this.#observer.bytes('out', chunk.length);
    this.#options.replay?.record.record(chunk);
    if (!this.#stream.write(chunk)) this.#socket.pause();
  }

  appEnd(): void {
    const socket = this.#socket;
    const stream = this.#stream;
    this.#appFinished = true;
    this.#options.replay?.record.recordAppEnd();
    if (socket.writableEnded) {
      stream.end();
      return;
    }
    // libuv reports a reset that arrives together with data as an end (POLLHUP after a partial
    // read) and never reads the error, so an app that reset would reach the peer as a clean,
    // truncated FIN. A write of zero bytes fetches the error (ECONNRESET: the 'error' handler
    // resets the stream) and succeeds on a connection the app only half-closed.
    socket.write(EMPTY, (error) => {
      if (!this.#detached && (error === undefined || error === null)) stream.end();
    });
  }

  appDrain(): void {
    if (this.#unconsumedBytes > 0) {
      this.#stream.consumed(this.#unconsumedBytes);
      this.#unconsumedBytes = 0;
    }
  }

  appError(error: NodeJS.ErrnoException): void {
    const code = this.#connecting ? ErrorCode.APP_UNREACHABLE : ErrorCode.STREAM_ABORTED;
    this.#stream.reset(code, this.#connecting ? `app unreachable: ${error.code ?? error.message}` : `app socket: ${error.code ?? error.message}`);
  }

  appClose(): void {
    // A socket that closes before both directions finished was aborted: say so to the peer
    // rather than let it take a truncated stream for a complete one.
    if (!(this.#appFinished && this.#peerFinished) && this.#stream.state !== 'closed') {
      this.#stream.reset(ErrorCode.STREAM_ABORTED, 'app socket closed');
    }
  }

  streamData(payload: Buffer): void {
    const socket = this.#socket;
    this.#observer.bytes('in', payload.length);
    // Payloads for the app are gathered until the end of the event loop's I/O phase and leave
    // in one vectored write: TLS hands them over one record (16 KiB) at a time, and a write per
    // record cost a syscall and a wakeup of the app each (the receiving sidecar's CPU per GiB
    // fell by a quarter; bench/NOTES.md). Flow control is unchanged: a corked socket's
    // write() returns false past its high-water mark and credit waits for 'drain'.
    if (!this.#corked) {
      this.#corked = true;
      socket.cork();
      setImmediate(uncorkJoin, this);
    }
    if (socket.write(payload)) {
      this.#stream.consumed(payload.length + this.#unconsumedBytes);
      this.#unconsumedBytes = 0;
    } else {
      this.#unconsumedBytes += payload.length;
    }
  }

  streamEnd(): void {
    this.#peerFinished = true;
    this.#socket.end();
  }

  streamReset(code: number, local: boolean): void {
    const socket = this.#socket;
    const { replay } = this.#options;
    if (replay === undefined || !replay.record.refusedAtOpen(code, local)) {
      resetAppSocket(socket);
      return;
    }
    this.#detached = true;
    socket.pause();
    socket.off('data', onAppData);
    socket.off('end', onAppEnd);
    socket.off('drain', onAppDrain);
    socket.off('error', onAppError);
    socket.off('close', onAppClose);
    replay.onRefusedAtOpen(replay.record.take());
  }
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
