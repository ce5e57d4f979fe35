/**
 * The one path from a session's frames to its socket: encodes, batches a tick's frames into
 * one socket write, and tells streams when the socket holds too much to take more DATA.
 */

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FrameEncoder } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';

/** A sender of DATA that waits for the socket to drain. */
export interface DrainWaiter {
  /** Sends what it can now. */
  flush(): void;
}

/**
 * How long a socket that has sent its last frames (GOAWAY, FIN) waits for the peer to close
 * before it is destroyed. Destroying at once could send a TCP RST that discards those frames.
 */
export const CLOSE_LINGER_MS = 2_000;

/**
 * A link whose socket holds more than this many times its budget has a peer that sends but
 * does not read (PROTOCOL.md, "Budget"): replies to it (PONG, WINDOW, RESET) would pile up.
 */
export const PEER_NOT_READING_BUDGET_FACTOR = 4;

/**
 * Small buffers (control frames, DATA headers) are joined into one write of up to this many
 * bytes. A socket that cannot send keeps one entry per write in memory, of a few hundred bytes
 * each: a queue of 9-byte PONGs would take 30 times its size.
 */
const MAX_JOINED_WRITE_BYTES = 16 * 1024;

/**
 * Writes frames to a link's socket.
 *
 * Batching: the first frame of a tick corks the socket and a `process.nextTick` uncorks it, so
 * every frame written in that tick, from any stream, leaves in one vectored write (one TLS
 * write, few records). Payloads are written as given, after their header, never copied.
 *
 * Until {@link FrameWriter.release} (the peer's HELLO has arrived and the version is agreed),
 * frames are encoded, so bad fields still throw at once, but held back.
 */
export class FrameWriter {
  readonly #socket: Duplex;
  readonly #encoder = new FrameEncoder();
  /** Queued bytes above which {@link FrameWriter.congested} turns true. */
  readonly #congestionBytes: number;
  /** Queued bytes above which the peer is taken as not reading: {@link FrameWriter} calls `onPeerNotReading`. */
  readonly #overflowBytes: number;
  readonly #onPeerNotReading: () => void;
  /** Small buffers of this tick not yet handed to the socket, written as one. */
  #joined: Buffer[] = [];
  #joinedBytes = 0;
  #overflowed = false;
  /** Encoded frames waiting for the handshake; null once released. */
  #held: Buffer[] | null = [];
  #heldBytes = 0;
  #corked = false;
  #closed = false;
  #lingerTimer: NodeJS.Timeout | undefined;
  /** Senders waiting for the socket to drain, served in the order they asked. */
  readonly #drainWaiters = new Set<DrainWaiter>();
  #bytesOut = 0;
  /** Bound once: scheduled every tick that writes. */
  readonly #uncork = (): void => {
    this.#flushJoined();
    this.#corked = false;
    this.#socket.uncork();
  };

  /**
   * @param maxBufferedBytes - see `SessionInit.maxLinkBufferedBytes`. Raised to the socket's
   *   high-water mark: below it, no write would return false and 'drain' would never come.
   * @param onPeerNotReading - called (once) when the socket holds more than
   *   {@link PEER_NOT_READING_BUDGET_FACTOR} times that budget; the writer drops later frames.
   */
  constructor(socket: Duplex, maxBufferedBytes: number, onPeerNotReading: () => void = () => undefined) {
    this.#socket = socket;
    this.#congestionBytes = Math.max(maxBufferedBytes, socket.writableHighWaterMark);
    this.#overflowBytes = PEER_NOT_READING_BUDGET_FACTOR * this.#congestionBytes;
    this.#onPeerNotReading = onPeerNotReading;
    // Frames are already batched per tick: Nagle's algorithm could only hold back the small
    // frames (WINDOW, PONG) that the peer is waiting on.
    (socket as Partial<Pick<Socket, 'setNoDelay'>>).setNoDelay?.(true);
    socket.on('drain', this.#onDrain);
    socket.once('close', () => clearTimeout(this.#lingerTimer));
  }

  /** Calls `waiter.flush()` once the socket has drained (see {@link FrameWriter.congested}). */
  flushOnDrain(waiter: DrainWaiter): void {
    if (!this.#closed) this.#drainWaiters.add(waiter);
  }

  /** Drops a waiter that has nothing left to send. */
  forgetWaiter(waiter: DrainWaiter): void {
    this.#drainWaiters.delete(waiter);
  }

  /**
   * Encodes and writes (or, before the handshake, holds) a control frame.
   * @throws ProtocolError when a field is invalid (nothing is written then).
   */
  send(frame: Frame): void {
    const buffers = this.#encoder.encode(frame);
    if (this.#held !== null) {
      for (const buffer of buffers) {
        this.#held.push(buffer);
        this.#heldBytes += buffer.length;
      }
      return;
    }
    for (const buffer of buffers) this.#write(buffer);
  }

  /** Writes a control frame ahead of the held ones: HELLO, and the GOAWAY of a failed handshake. */
  sendNow(frame: Frame): void {
    for (const buffer of this.#encoder.encode(frame)) this.#write(buffer);
  }

  /**
   * Writes one DATA frame whose payload is `pieces`, in order, `payloadBytes` in all: the
   * pieces leave as they are, after one header, never joined. Only streams write DATA, and
   * only once the writer is released (their credit is zero until the peer's HELLO).
   */
  sendData(streamId: number, pieces: readonly Buffer[], payloadBytes: number): void {
    this.#write(this.#encoder.encodeDataHeader(streamId, payloadBytes));
    for (const piece of pieces) this.#writeLarge(piece);
  }

  /** Writes the held frames and every later one straight away. */
  release(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    this.#heldBytes = 0;
    for (const buffer of held) this.#write(buffer);
  }

  /**
   * Flushes what is queued, then half-closes the socket so the peer reads every frame written
   * so far, and destroys it if the peer has not closed within {@link CLOSE_LINGER_MS}.
   * Later frames are dropped.
   */
  end(): void {
    if (this.#closed) return;
    this.#flushJoined();
    this.#closed = true;
    this.#drainWaiters.clear();
    this.#held = null;
    this.#heldBytes = 0;
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (!socket.writableEnded) socket.end();
    this.#lingerTimer = setTimeout(() => socket.destroy(), CLOSE_LINGER_MS).unref();
  }

  /** Drops every later frame and destroys the socket now. */
  destroy(): void {
    this.#closed = true;
    this.#joined = [];
    this.#joinedBytes = 0;
    this.#drainWaiters.clear();
    this.#held = null;
    this.#heldBytes = 0;
    this.#socket.destroy();
  }

  /** True when the socket holds more than the link's budget: DATA must wait for 'drain'. */
  get congested(): boolean {
    return this.#socket.writableLength >= this.#congestionBytes;
  }

  /** Bytes handed to the socket so far. */
  get bytesOut(): number {
    return this.#bytesOut;
  }

  /** Bytes held for the handshake plus bytes the socket has not yet passed to the kernel. */
  get bufferedBytes(): number {
    return this.#heldBytes + this.#joinedBytes + this.#socket.writableLength;
  }

  readonly #onDrain = (): void => {
    for (const waiter of this.#drainWaiters) {
      // Stop once the socket is full again: the waiters left are served at the next 'drain'
      // (a waiter that filled it re-adds itself at the end, so waiters take turns).
      if (this.congested || this.#closed) return;
      this.#drainWaiters.delete(waiter);
      waiter.flush();
    }
  };

  /** Queues a small buffer (a frame head) to leave in this tick's joined write. */
  #write(buffer: Buffer): void {
    if (this.#closed) return;
    this.#cork();
    this.#bytesOut += buffer.length;
    this.#joined.push(buffer);
    this.#joinedBytes += buffer.length;
    if (this.#joinedBytes >= MAX_JOINED_WRITE_BYTES) this.#flushJoined();
  }

  /** Writes a payload as it is, after the small buffers queued before it. */
  #writeLarge(buffer: Buffer): void {
    if (this.#closed) return;
    this.#cork();
    this.#flushJoined();
    this.#bytesOut += buffer.length;
    this.#socket.write(buffer);
    this.#checkBudget();
  }

  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    this.#socket.cork();
    process.nextTick(this.#uncork);
  }

  #flushJoined(): void {
    const joined = this.#joined;
    if (joined.length === 0) return;
    this.#joined = [];
    this.#joinedBytes = 0;
    this.#socket.write(joined.length === 1 ? (joined[0] as Buffer) : Buffer.concat(joined));
    this.#checkBudget();
  }

  #checkBudget(): void {
    if (this.#overflowed || this.#socket.writableLength <= this.#overflowBytes) return;
    // Once: the owner queues its last frame (GOAWAY) and ends the writer.
    this.#overflowed = true;
    this.#onPeerNotReading();
  }
}
