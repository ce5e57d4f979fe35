/**
 * One multiplexed stream: its half-close state machine and its credit-based flow control in
 * both directions. Frames go out through the session (a {@link StreamLink}); frames for this
 * stream come in through the `receive*` methods the session calls.
 */

import { EventEmitter } from 'node:events';
import { ErrorCode, FrameType, Limits, ProtocolError } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { MuxError } from './errors.js';
import { wireMessage } from './wire-message.js';

/** What a stream needs from its session. */
export interface StreamLink {
  /** Largest DATA payload to send in one frame. */
  readonly maxFramePayloadBytes: number;
  /** Consumed bytes to collect before returning them to the peer in one WINDOW. */
  readonly windowUpdateBytes: number;
  /** True while the socket holds more than the link's budget: DATA must wait. */
  readonly congested: boolean;
  sendControl(frame: Frame): void;
  /** One DATA frame whose payload is `pieces` in order, `payloadBytes` in all. */
  sendData(streamId: number, pieces: readonly Buffer[], payloadBytes: number): void;
  /** Calls `stream.flush()` once the socket has drained. */
  waitForLink(stream: MuxStream): void;
  /** The stream is closed: forget it (and, when reset here, ignore its late frames). */
  streamClosed(stream: MuxStream, resetHere: boolean): void;
  /** Sends TUNNEL_DRAIN for `streamId` if the link speaks a version that has it; whether it did. */
  sendTunnelDrain(streamId: number, gateway: string): boolean;
}

/** The sending half: open, ended by the app with bytes or the FIN still queued, or done. */
type SendState = 'open' | 'ending' | 'done';
/** The receiving half: open, or done (FIN received or reset). */
type ReceiveState = 'open' | 'done';

/** Flow-control counters of a stream, for observability and tests. */
export interface MuxStreamStats {
  /** Bytes this end may still send before the peer returns credit. */
  sendCreditBytes: number;
  /** Bytes taken by `write()` and not yet handed to the link (waiting for credit or the socket). */
  queuedBytes: number;
  /** Bytes delivered by 'data' that the app has not yet reported as `consumed()`. */
  unconsumedBytes: number;
  /** Bytes the peer may still send before this end returns credit. */
  peerCreditBytes: number;
}

/**
 * A bidirectional byte stream inside a link.
 *
 * Events: `'data'` (payload: Buffer — a view of the bytes read; report it with
 * {@link MuxStream.consumed} once done with it), `'end'` (peer FIN), `'drain'` (credit back:
 * may write again), `'reset'` (code: number, message: string, local: boolean), `'close'`
 * (both FINs done or a reset; the stream is forgotten by its session); on a tunnel stream,
 * `'tunnelDrain'` (gateway: string — a gateway of the tunnel's path is draining).
 *
 * Created by a `Session` only (`openStream()`, or for the peer's streams `onStream`).
 */
export class MuxStream extends EventEmitter {
  /** The stream id: odd when the dialer opened it, even when the acceptor did. */
  readonly id: number;
  /** The destination service named in the stream's OPEN. */
  readonly service: string;
  /** Whether the stream was opened by TUNNEL (it then carries a tunnel's bytes) rather than OPEN. */
  readonly tunnel: boolean;
  readonly #link: StreamLink;

  #sendState: SendState = 'open';
  #receiveState: ReceiveState = 'open';
  #closed = false;

  #sendCreditBytes: number;
  /** Chunks taken by write() and not yet sent; the head may be partly sent. */
  readonly #queue: Buffer[] = [];
  #queueHeadOffset = 0;
  #queuedBytes = 0;
  /** write() returned false: emit 'drain' once the queue is empty. */
  #needDrain = false;

  #peerCreditBytes: number;
  #unconsumedBytes = 0;
  /** Consumed bytes not yet returned to the peer: WINDOW frames are batched. */
  #consumedUnreturnedBytes = 0;
  #bytesMoved = 0;

  /** @internal Streams come from `Session.openStream()` and `SessionInit.onStream`. */
  constructor(id: number, service: string, link: StreamLink, sendCreditBytes: number, peerCreditBytes: number, tunnel = false) {
    super();
    this.id = id;
    this.service = service;
    this.tunnel = tunnel;
    this.#link = link;
    this.#sendCreditBytes = sendCreditBytes;
    this.#peerCreditBytes = peerCreditBytes;
  }

  /**
   * Sends bytes (split into frames ≤ maxFramePayloadBytes), without copying: do not modify
   * `chunk` afterwards. Returns false when credit ran out (or the link's socket is full): the
   * bytes are still taken (held, bounded to what one call gave), stop writing until 'drain'.
   * After a reset the bytes are dropped and false is returned ('reset' has said why).
   * @throws MuxError `TRELLIS_ERR_STREAM_CLOSED` after `end()`.
   */
  write(chunk: Buffer): boolean {
    return this.writev([chunk]);
  }

  /**
   * Like {@link MuxStream.write} for several chunks at once: what credit allows leaves as few
   * DATA frames as the frame size permits (a gateway's splice and a tunnel's TLS records use
   * this), each chunk as it is.
   * @throws MuxError `TRELLIS_ERR_STREAM_CLOSED` after `end()`.
   */
  writev(chunks: readonly Buffer[]): boolean {
    if (this.#closed) return false;
    if (this.#sendState !== 'open') {
      throw new MuxError('TRELLIS_ERR_STREAM_CLOSED', `write after end on stream ${this.id}`);
    }
    // A queue that was not empty is already waiting for credit or for the socket.
    const wasIdle = this.#queuedBytes === 0;
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      this.#queue.push(chunk);
      this.#queuedBytes += chunk.length;
      this.#bytesMoved += chunk.length;
    }
    if (wasIdle && this.#queuedBytes > 0) this.flush();
    if (this.#queuedBytes === 0) return true;
    this.#needDrain = true;
    return false;
  }

  /** Half-close (FIN) after all written bytes are sent. Does nothing when already ended or reset. */
  end(): void {
    if (this.#closed || this.#sendState !== 'open') return;
    this.#sendState = 'ending';
    if (this.#queuedBytes === 0) this.#sendFin();
  }

  /** Abort both directions with a wire ErrorCode. Does nothing on a closed stream. */
  reset(code: number, message = ''): void {
    if (this.#closed) return;
    const text = wireMessage(message);
    this.#link.sendControl({ type: FrameType.RESET, streamId: this.id, code, message: text });
    this.#terminate(code, text, true);
  }

  /**
   * Tells the peer (TUNNEL_DRAIN, protocol version 3) that gateway `gateway` of this tunnel is
   * draining. Returns false, sending nothing, on a stream that is not a tunnel or is done, or
   * on a link of an earlier version.
   */
  sendTunnelDrain(gateway: string): boolean {
    if (this.#closed || !this.tunnel) return false;
    return this.#link.sendTunnelDrain(this.id, gateway);
  }

  /**
   * The app consumed n bytes that 'data' delivered: return credit to the peer (a WINDOW goes
   * out once at least half the window has been consumed, to batch). Counts beyond what was
   * delivered are ignored: the peer never gets more credit than the window.
   */
  consumed(bytes: number): void {
    const consumedBytes = Math.min(Math.floor(bytes), this.#unconsumedBytes);
    if (!(consumedBytes > 0)) return;
    this.#unconsumedBytes -= consumedBytes;
    // After the peer's FIN (or a reset) no DATA can come: credit would be wasted.
    if (this.#closed || this.#receiveState !== 'open') return;
    this.#consumedUnreturnedBytes += consumedBytes;
    if (this.#consumedUnreturnedBytes < this.#link.windowUpdateBytes) return;
    const creditBytes = this.#consumedUnreturnedBytes;
    this.#consumedUnreturnedBytes = 0;
    this.#peerCreditBytes += creditBytes;
    this.#link.sendControl({ type: FrameType.WINDOW, streamId: this.id, creditBytes });
  }

  /**
   * 'localClosed' once `end()` was called, 'remoteClosed' once the peer's FIN arrived, 'closed'
   * after both or a reset. 'closed' may come before the 'close' event while written bytes and
   * the FIN still wait for credit.
   */
  get state(): 'open' | 'localClosed' | 'remoteClosed' | 'closed' {
    if (this.#closed) return 'closed';
    const localClosed = this.#sendState !== 'open';
    const remoteClosed = this.#receiveState !== 'open';
    if (localClosed) return remoteClosed ? 'closed' : 'localClosed';
    return remoteClosed ? 'remoteClosed' : 'open';
  }

  /** Whether 'close' was emitted (the session has forgotten the stream); `state` may say 'closed' earlier. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes taken by `write()` and received from the peer, since the stream opened (its activity). */
  get bytesMoved(): number {
    return this.#bytesMoved;
  }

  /** Flow-control counters. */
  get stats(): MuxStreamStats {
    return {
      sendCreditBytes: this.#sendCreditBytes,
      queuedBytes: this.#queuedBytes,
      unconsumedBytes: this.#unconsumedBytes,
      peerCreditBytes: this.#peerCreditBytes,
    };
  }

  /**
   * @internal Sends queued bytes while credit and the socket allow, then the FIN once the
   * queue is empty after `end()`.
   */
  flush(): void {
    const link = this.#link;
    while (this.#queuedBytes > 0 && this.#sendCreditBytes > 0 && !this.#closed) {
      if (link.congested) {
        link.waitForLink(this);
        return;
      }
      this.#sendFrame(Math.min(this.#queuedBytes, this.#sendCreditBytes, link.maxFramePayloadBytes));
    }
    if (this.#queuedBytes > 0 || this.#closed) return;
    if (this.#sendState === 'ending') this.#sendFin();
    if (this.#needDrain && !this.#closed) {
      this.#needDrain = false;
      this.emit('drain');
    }
  }

  /**
   * @internal Credit from the peer: its HELLO's initial window, or a WINDOW frame.
   * @throws ProtocolError `TRELLIS_ERR_FLOW_CONTROL` when the credit would exceed the largest window.
   */
  receiveCredit(creditBytes: number): void {
    // A WINDOW that crossed our FIN or reset is harmless.
    if (this.#closed || this.#sendState === 'done') return;
    this.#sendCreditBytes += creditBytes;
    if (this.#sendCreditBytes > Limits.MAX_WINDOW_BYTES) {
      throw new ProtocolError(
        'TRELLIS_ERR_FLOW_CONTROL',
        `credit on stream ${this.id} exceeds ${Limits.MAX_WINDOW_BYTES} bytes`,
        ErrorCode.FLOW_CONTROL_ERROR,
      );
    }
    this.flush();
  }

  /**
   * @internal A DATA payload from the peer. DATA after the peer's FIN is a stream error: the
   * stream is reset with PROTOCOL_ERROR (PROTOCOL.md), the link carries on.
   * @throws ProtocolError `TRELLIS_ERR_FLOW_CONTROL` beyond the credit given.
   */
  receiveData(payload: Buffer): void {
    if (this.#receiveState !== 'open') {
      this.reset(ErrorCode.PROTOCOL_ERROR, 'DATA after FIN');
      return;
    }
    if (payload.length > this.#peerCreditBytes) {
      throw new ProtocolError(
        'TRELLIS_ERR_FLOW_CONTROL',
        `${payload.length} bytes of DATA on stream ${this.id} exceed the ${this.#peerCreditBytes} bytes of credit given`,
        ErrorCode.FLOW_CONTROL_ERROR,
      );
    }
    this.#peerCreditBytes -= payload.length;
    this.#unconsumedBytes += payload.length;
    this.#bytesMoved += payload.length;
    if (payload.length > 0) this.emit('data', payload);
  }

  /** @internal The peer's FIN. A second FIN is a stream error, as DATA after FIN is. */
  receiveFin(): void {
    if (this.#receiveState !== 'open') {
      this.reset(ErrorCode.PROTOCOL_ERROR, 'a second FIN');
      return;
    }
    this.#receiveState = 'done';
    this.emit('end');
    this.#closeIfDone();
  }

  /** @internal The peer's TUNNEL_DRAIN (the session checked that this is a tunnel stream). */
  receiveTunnelDrain(gateway: string): void {
    if (!this.#closed) this.emit('tunnelDrain', gateway);
  }

  /** @internal The peer's RESET. */
  receiveReset(code: number, message: string): void {
    this.#terminate(code, message, false);
  }

  /** @internal The link is gone: reset without a frame (nothing can be sent any more). */
  abort(message: string): void {
    this.#terminate(ErrorCode.STREAM_ABORTED, message, true);
  }

  /**
   * Sends the next `frameBytes` queued bytes as one DATA frame: the chunks of several writes
   * (a splice's pieces, a TLS session's records) share one header, without being joined.
   */
  #sendFrame(frameBytes: number): void {
    const pieces: Buffer[] = [];
    let remaining = frameBytes;
    while (remaining > 0) {
      const head = this.#queue[0]!;
      const offset = this.#queueHeadOffset;
      const headBytes = head.length - offset;
      const pieceBytes = Math.min(headBytes, remaining);
      pieces.push(offset === 0 && pieceBytes === head.length ? head : head.subarray(offset, offset + pieceBytes));
      remaining -= pieceBytes;
      if (pieceBytes === headBytes) {
        this.#queue.shift();
        this.#queueHeadOffset = 0;
      } else {
        this.#queueHeadOffset += pieceBytes;
      }
    }
    this.#sendCreditBytes -= frameBytes;
    this.#queuedBytes -= frameBytes;
    this.#link.sendData(this.id, pieces, frameBytes);
  }

  #sendFin(): void {
    this.#link.sendControl({ type: FrameType.FIN, streamId: this.id });
    this.#sendState = 'done';
    this.#closeIfDone();
  }

  #closeIfDone(): void {
    if (this.#closed || this.#sendState !== 'done' || this.#receiveState !== 'done') return;
    this.#closed = true;
    try {
      this.emit('close');
    } finally {
      this.#link.streamClosed(this, false);
    }
  }

  #terminate(code: number, message: string, local: boolean): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sendState = 'done';
    this.#receiveState = 'done';
    this.#queue.length = 0;
    this.#queueHeadOffset = 0;
    this.#queuedBytes = 0;
    try {
      this.emit('reset', code, message, local);
      this.emit('close');
    } finally {
      this.#link.streamClosed(this, local);
    }
  }
}
