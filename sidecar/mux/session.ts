/**
 * A session: the stream multiplexer over one link. It owns the socket, runs the HELLO
 * exchange, routes incoming frames to streams, enforces the protocol's state rules, and
 * drains or closes the link.
 */

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ErrorCode, errorCodeName, FrameDecoder, FrameType, ProtocolError, TUNNEL_DRAIN_PROTOCOL_VERSION, TUNNEL_PROTOCOL_VERSION } from '../../proto/index.js';
import type { Frame, GoAwayFrame, HelloFrame, OpenFrame, TrellisError, TunnelDrainFrame, TunnelFrame } from '../../proto/index.js';
import { MuxError } from './errors.js';
import { FrameWriter, PEER_NOT_READING_BUDGET_FACTOR } from './frame-writer.js';
import { localHello, negotiateVersion } from './handshake.js';
import { PingTracker } from './ping-tracker.js';
import { RefusalBudget } from './refusal-budget.js';
import { resolveSessionInit } from './session-init.js';
import type { ResolvedSessionInit, SessionInit } from './session-init.js';
import type { SessionStats } from './session-stats.js';
import { MuxStream } from './stream.js';
import type { StreamLink } from './stream.js';
import { StreamTable } from './stream-table.js';
import { wireMessage } from './wire-message.js';

/** 'active' takes new streams; 'draining' (GOAWAY sent or received) only finishes its own; 'closed' is final. */
type SessionPhase = 'active' | 'draining' | 'closed';

/**
 * The multiplexer over one link (any Duplex; a TLS socket in production).
 *
 * Events: `'ready'` (the peer's HELLO arrived and a version was agreed), `'goaway'` (code:
 * number, message: string — the peer's GOAWAY), `'close'` (err?: TrellisError — absent after a
 * graceful drain).
 *
 * Streams may be opened before 'ready': their OPEN and other frames are held and sent right
 * after the HELLO exchange, and their data waits for the credit the peer's HELLO grants.
 *
 * A peer that breaks the protocol gets a GOAWAY with the wire code of the violation and the
 * link is closed; 'close' then carries the `ProtocolError`. Exceptions thrown by listeners
 * while a frame is handled close the link with `TRELLIS_ERR_INTERNAL`. A peer that reads
 * nothing while more than four times `maxLinkBufferedBytes` is queued for it gets GOAWAY
 * RESOURCE_EXHAUSTED, and 'close' carries MuxError `TRELLIS_ERR_PEER_NOT_READING`.
 *
 * A peer whose streams are refused at open faster than the `refusals` budget has its link
 * read paused until the budget recovers (event `'paused'`, ms: number); see RefusalBudget.
 */
export class Session extends EventEmitter {
  readonly #init: ResolvedSessionInit;
  readonly #writer: FrameWriter;
  readonly #decoder = new FrameDecoder({ payloadPieces: true });
  readonly #link: StreamLink;
  readonly #streams: StreamTable;
  readonly #pings = new PingTracker();
  readonly #refusals: RefusalBudget;
  readonly #socket: Duplex;
  #resumeTimer: NodeJS.Timeout | undefined;

  #phase: SessionPhase = 'active';
  /** The peer's HELLO: unset until the handshake is done. */
  #peerHello: HelloFrame | undefined;
  #negotiatedVersion: number | undefined;
  #helloTimer: NodeJS.Timeout | undefined;
  #goAwaySent = false;
  /**
   * The PONG of a PING sent right after our GOAWAY has come back: every OPEN the peer sent
   * before it read the GOAWAY has arrived (the link is in order) and was refused with
   * GOING_AWAY, so closing now cannot cut one off unanswered.
   */
  #goAwayAcknowledged = false;
  #bytesIn = 0;

  /**
   * Starts the session: sends HELLO and waits `helloTimeoutMs` for the peer's.
   * @throws ValidationError `TRELLIS_ERR_INVALID` for options out of range.
   */
  constructor(socket: Duplex, init: SessionInit) {
    super();
    this.#init = resolveSessionInit(init);
    this.#socket = socket;
    this.#refusals = new RefusalBudget(this.#init.refusals);
    this.#writer = new FrameWriter(socket, this.#init.maxLinkBufferedBytes, this.#onPeerNotReading);
    this.#streams = new StreamTable(this.#init.role, (streamId, message) => this.#writer.send({ type: FrameType.RESET, streamId, code: ErrorCode.PROTOCOL_ERROR, message }));
    const writer = this.#writer;
    this.#link = {
      maxFramePayloadBytes: this.#init.maxFramePayloadBytes,
      windowUpdateBytes: Math.max(1, Math.floor(this.#init.initialWindowBytes / 2)),
      get congested() {
        return writer.congested;
      },
      sendControl: (frame) => writer.send(frame),
      sendData: (streamId, pieces, payloadBytes) => writer.sendData(streamId, pieces, payloadBytes),
      waitForLink: (stream) => writer.flushOnDrain(stream),
      streamClosed: (stream, resetHere) => this.#onStreamClosed(stream, resetHere),
      sendTunnelDrain: (streamId, gateway) => {
        if (this.#phase === 'closed' || (this.#negotiatedVersion ?? 0) < TUNNEL_DRAIN_PROTOCOL_VERSION) return false;
        writer.send({ type: FrameType.TUNNEL_DRAIN, streamId, gateway });
        return true;
      },
    };

    socket.on('data', this.#onSocketData);
    socket.on('end', this.#onSocketEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    writer.sendNow(localHello(this.#init.initialWindowBytes, this.#init.maxVersion));
    this.#helloTimer = setTimeout(this.#onHelloTimeout, this.#init.helloTimeoutMs).unref();
  }

  /**
   * Opens a stream to `service` at the peer. Before 'ready' its frames are held (see the class).
   * @throws MuxError `TRELLIS_ERR_GOING_AWAY` after a GOAWAY either way,
   *   `TRELLIS_ERR_SESSION_CLOSED` once closed; ProtocolError `TRELLIS_ERR_BAD_FIELD` for an
   *   invalid service name.
   */
  openStream(service: string): MuxStream {
    if (this.#phase === 'closed') throw new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session is closed');
    if (this.#phase === 'draining') throw new MuxError('TRELLIS_ERR_GOING_AWAY', 'the link is going away');
    return this.#openLocal(service, (streamId) => ({ type: FrameType.OPEN, streamId, service }));
  }

  /**
   * Opens a tunnel stream (protocol version 2) along `path` towards sidecar `target`; `hop` is
   * the index in `path` of the receiver, or `path.length` when the receiver is `target`.
   * Only valid once the link is 'ready' and speaks version 2.
   * @throws MuxError `TRELLIS_ERR_GOING_AWAY`, `TRELLIS_ERR_SESSION_CLOSED`,
   *   `TRELLIS_ERR_TUNNEL_UNSUPPORTED` (the peer speaks version 1 or the HELLOs are not done);
   *   ProtocolError `TRELLIS_ERR_BAD_FIELD` for an invalid path or target.
   */
  openTunnel(path: readonly string[], hop: number, target: string): MuxStream {
    if (this.#phase === 'active' && (this.#negotiatedVersion ?? 0) < TUNNEL_PROTOCOL_VERSION) {
      throw new MuxError('TRELLIS_ERR_TUNNEL_UNSUPPORTED', `the link speaks protocol version ${this.#negotiatedVersion ?? '(not negotiated yet)'}; tunnels need ${TUNNEL_PROTOCOL_VERSION}`);
    }
    return this.#openLocal(`tunnel:${target}`, (streamId) => ({ type: FrameType.TUNNEL, streamId, path: [...path], hop, target }), true);
  }

  #openLocal(label: string, openFrame: (streamId: number) => Frame, tunnel = false): MuxStream {
    if (this.#phase === 'closed') throw new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session is closed');
    if (this.#phase === 'draining') throw new MuxError('TRELLIS_ERR_GOING_AWAY', 'the link is going away');
    const streamId = this.#streams.peekLocalStreamId();
    if (streamId === undefined) {
      this.goAway(ErrorCode.NONE, 'stream ids exhausted');
      throw new MuxError('TRELLIS_ERR_GOING_AWAY', 'stream ids exhausted on this link');
    }
    // Sent first: an invalid field throws before any state changes.
    this.#writer.send(openFrame(streamId));
    const sendCreditBytes = this.#peerHello?.initialWindowBytes ?? 0;
    const stream = new MuxStream(streamId, label, this.#link, sendCreditBytes, this.#init.initialWindowBytes, tunnel);
    this.#streams.addLocal(stream);
    return stream;
  }

  /** Resolves once the HELLO exchange is done; rejects if the session closes first. */
  whenReady(): Promise<void> {
    if (this.#peerHello !== undefined) return Promise.resolve();
    if (this.#phase === 'closed') return Promise.reject(new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session is closed'));
    return new Promise((resolve, reject) => {
      const onClose = (error?: TrellisError): void => {
        this.off('ready', onReady);
        reject(error ?? new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session closed before HELLO'));
      };
      const onReady = (): void => {
        this.off('close', onClose);
        resolve();
      };
      this.once('ready', onReady);
      this.once('close', onClose);
    });
  }

  /** Whether new streams may be opened here: no GOAWAY either way yet, and not closed. */
  get accepting(): boolean {
    return this.#phase === 'active';
  }

  /** The protocol version agreed in HELLO, once the exchange is done. */
  get version(): number | undefined {
    return this.#negotiatedVersion;
  }

  /**
   * Measures the link's round-trip time with a PING. Rejects with MuxError
   * `TRELLIS_ERR_SESSION_CLOSED` if the session closes first.
   */
  ping(): Promise<number> {
    if (this.#phase === 'closed') return Promise.reject(new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session is closed'));
    const { nonce, rtt } = this.#pings.start();
    this.#writer.send({ type: FrameType.PING, nonce });
    return rtt;
  }

  /**
   * Sends GOAWAY: no new streams either way from now on; the link closes (without error)
   * once every active stream is done. Only the peer's GOAWAY emits 'goaway'.
   */
  goAway(code: number = ErrorCode.NONE, message = ''): void {
    if (this.#phase === 'closed') return;
    if (!this.#goAwaySent) {
      this.#goAwaySent = true;
      this.#writer.send({ type: FrameType.GOAWAY, code, message: wireMessage(message) });
      this.ping().then(
        () => {
          this.#goAwayAcknowledged = true;
          this.#closeIfDrained();
        },
        // The session closed first: nothing left to wait for.
        () => undefined,
      );
    }
    this.#phase = 'draining';
    this.#closeIfDrained();
  }

  /** Destroys all streams (they get 'reset' STREAM_ABORTED, local) and the socket at once. */
  close(err?: TrellisError): void {
    if (this.#phase === 'closed') return;
    this.#writer.destroy();
    this.#terminate(err);
  }

  get stats(): SessionStats {
    return {
      activeStreams: this.#streams.size,
      openedStreams: this.#streams.openedStreams,
      bytesIn: this.#bytesIn,
      bytesOut: this.#writer.bytesOut,
      rttMs: this.#pings.lastRttMs,
      negotiatedVersion: this.#negotiatedVersion,
      bufferedBytes: this.#writer.bufferedBytes,
    };
  }

  readonly #onSocketData = (chunk: Buffer): void => {
    this.#bytesIn += chunk.length;
    // After a GOAWAY the socket is still read (and the bytes dropped) until the peer closes.
    if (this.#phase === 'closed') return;
    try {
      this.#decoder.push(chunk, this.#onFrame);
    } catch (error) {
      this.#onFrameError(error);
    }
    this.#pauseIfOverBudget();
  };

  /** After a chunk whose OPENs were refused beyond the budget: stop reading until it recovers. */
  #pauseIfOverBudget(): void {
    if (this.#phase === 'closed' || this.#resumeTimer !== undefined) return;
    const pauseMs = this.#refusals.pauseMs();
    if (pauseMs === 0) return;
    this.#socket.pause();
    this.#resumeTimer = setTimeout(() => {
      this.#resumeTimer = undefined;
      if (this.#phase !== 'closed') this.#socket.resume();
    }, pauseMs);
    this.emit('paused', pauseMs);
  }

  /** A frame broke the protocol, or a listener threw while one was handled. */
  #onFrameError(error: unknown): void {
    if (this.#phase === 'closed') return;
    if (error instanceof ProtocolError) return this.#fail(error, error.wireCode);
    const message = `a listener failed while a frame was handled: ${error instanceof Error ? error.message : String(error)}`;
    this.#fail(new MuxError('TRELLIS_ERR_INTERNAL', message, { cause: error }), ErrorCode.INTERNAL_ERROR);
  }

  /** Routes one frame; throws ProtocolError for anything the protocol forbids. */
  readonly #onFrame = (frame: Frame): void => {
    // A frame earlier in the same chunk may have closed the session.
    if (this.#phase === 'closed') return;
    if (this.#peerHello === undefined) {
      if (frame.type !== FrameType.HELLO) throw new ProtocolError('TRELLIS_ERR_UNEXPECTED_FRAME', 'a frame came before HELLO');
      this.#onHello(frame);
      return;
    }
    switch (frame.type) {
      case FrameType.DATA:
      case FrameType.WINDOW:
      case FrameType.FIN:
      case FrameType.RESET:
        this.#streams.route(frame);
        return;
      case FrameType.OPEN:
        this.#onOpen(frame);
        return;
      case FrameType.TUNNEL:
        this.#onTunnel(frame);
        return;
      case FrameType.TUNNEL_DRAIN:
        this.#onTunnelDrain(frame);
        return;
      case FrameType.PING:
        this.#writer.send({ type: FrameType.PONG, nonce: frame.nonce });
        return;
      case FrameType.PONG:
        this.#pings.onPong(frame.nonce);
        return;
      case FrameType.GOAWAY:
        this.#onGoAway(frame);
        return;
      case FrameType.HELLO:
        throw new ProtocolError('TRELLIS_ERR_UNEXPECTED_FRAME', 'a second HELLO');
    }
  };

  #onHello(hello: HelloFrame): void {
    clearTimeout(this.#helloTimer);
    this.#negotiatedVersion = negotiateVersion(localHello(this.#init.initialWindowBytes, this.#init.maxVersion), hello);
    this.#peerHello = hello;
    this.#writer.release();
    // Only streams opened here exist yet: the peer cannot OPEN before its HELLO.
    for (const stream of this.#streams.values()) stream.receiveCredit(hello.initialWindowBytes);
    this.emit('ready');
    this.#closeIfDrained();
  }

  #onOpen(open: OpenFrame): void {
    const stream = this.#acceptPeerStream(open.streamId, open.service, this.#init.onStream === undefined ? 'this end serves no streams' : undefined, ErrorCode.UNKNOWN_SERVICE);
    if (stream !== undefined) this.#init.onStream?.(stream, open.service);
    this.#spendIfRefused(stream);
  }

  /** A stream refused at open, here or by the handler (which resets it before returning). */
  #spendIfRefused(stream: MuxStream | undefined): void {
    if (stream === undefined || stream.state === 'closed') this.#refusals.spend();
  }

  #onTunnel(tunnel: TunnelFrame): void {
    if ((this.#negotiatedVersion ?? 0) < TUNNEL_PROTOCOL_VERSION) {
      throw new ProtocolError('TRELLIS_ERR_UNEXPECTED_FRAME', `TUNNEL on a link of protocol version ${this.#negotiatedVersion}`);
    }
    const refusal = this.#init.onTunnel === undefined ? 'this end takes no tunnels' : undefined;
    const stream = this.#acceptPeerStream(tunnel.streamId, `tunnel:${tunnel.target}`, refusal, ErrorCode.ROUTE_REFUSED, true);
    if (stream !== undefined) this.#init.onTunnel?.(stream, tunnel);
    this.#spendIfRefused(stream);
  }

  #onTunnelDrain(frame: TunnelDrainFrame): void {
    if ((this.#negotiatedVersion ?? 0) < TUNNEL_DRAIN_PROTOCOL_VERSION) {
      throw new ProtocolError('TRELLIS_ERR_UNEXPECTED_FRAME', `TUNNEL_DRAIN on a link of protocol version ${this.#negotiatedVersion}`);
    }
    this.#streams.routeTunnelDrain(frame);
  }

  /**
   * The rules every stream the peer opens goes through (its id, a drain, the stream limit, a
   * handler to take it): the new stream, or undefined once it was refused with RESET.
   * @throws ProtocolError `TRELLIS_ERR_STREAM_ID` for a bad or reused id.
   */
  #acceptPeerStream(streamId: number, label: string, noHandler: string | undefined, noHandlerCode: ErrorCode, tunnel = false): MuxStream | undefined {
    this.#streams.acceptPeerStreamId(streamId);
    if (this.#phase !== 'active') return void this.#refuse(streamId, ErrorCode.GOING_AWAY, 'the link is going away');
    if (this.#streams.peerStreamsActive >= this.#init.maxConcurrentStreams) {
      return void this.#refuse(streamId, ErrorCode.RESOURCE_EXHAUSTED, `at most ${this.#init.maxConcurrentStreams} streams at once`);
    }
    if (noHandler !== undefined) return void this.#refuse(streamId, noHandlerCode, noHandler);
    const sendCreditBytes = this.#peerHello?.initialWindowBytes ?? 0;
    const stream = new MuxStream(streamId, label, this.#link, sendCreditBytes, this.#init.initialWindowBytes, tunnel);
    this.#streams.addPeer(stream);
    return stream;
  }

  #refuse(streamId: number, code: ErrorCode, message: string): void {
    this.#writer.send({ type: FrameType.RESET, streamId, code, message });
    // DATA may follow the OPEN at once: it is in flight already.
    this.#streams.rememberRefused(streamId);
  }

  #onGoAway(goAway: GoAwayFrame): void {
    if (this.#phase === 'active') this.#phase = 'draining';
    this.emit('goaway', goAway.code, goAway.message);
    if (goAway.code === ErrorCode.NONE || goAway.code === ErrorCode.GOING_AWAY) {
      this.#closeIfDrained();
      return;
    }
    // Any other code: the peer has given up on the link and is closing it.
    const error = new MuxError('TRELLIS_ERR_PEER_GOAWAY', `the peer closed the link: ${errorCodeName(goAway.code)} ${goAway.message}`, {
      wireCode: goAway.code,
    });
    this.#writer.end();
    this.#terminate(error);
  }

  #onStreamClosed(stream: MuxStream, resetHere: boolean): void {
    this.#streams.remove(stream, resetHere);
    this.#writer.forgetWaiter(stream);
    this.#closeIfDrained();
  }

  /**
   * After a GOAWAY either way, the link closes gracefully once no stream is left (and, after
   * ours, once the peer has answered the PING sent behind it: see #goAwayAcknowledged).
   */
  #closeIfDrained(): void {
    if (this.#phase !== 'draining' || this.#peerHello === undefined || this.#streams.size > 0) return;
    if (this.#goAwaySent && !this.#goAwayAcknowledged) return;
    this.#writer.end();
    this.#terminate(undefined);
  }

  readonly #onPeerNotReading = (): void => {
    const limitBytes = PEER_NOT_READING_BUDGET_FACTOR * this.#init.maxLinkBufferedBytes;
    this.#fail(new MuxError('TRELLIS_ERR_PEER_NOT_READING', `the peer reads nothing: over ${limitBytes} bytes queued for it`, { wireCode: ErrorCode.RESOURCE_EXHAUSTED }), ErrorCode.RESOURCE_EXHAUSTED);
  };

  readonly #onHelloTimeout = (): void => {
    this.#fail(new MuxError('TRELLIS_ERR_HELLO_TIMEOUT', `no HELLO within ${this.#init.helloTimeoutMs} ms`), ErrorCode.PROTOCOL_ERROR);
  };

  readonly #onSocketEnd = (): void => this.#linkLost('the peer ended the link', undefined, true);
  readonly #onSocketError = (error: Error): void => this.#linkLost(`the link failed: ${error.message}`, error, false);
  readonly #onSocketClose = (): void => this.#linkLost('the link closed', undefined, false);

  #linkLost(message: string, cause: Error | undefined, peerEnded: boolean): void {
    if (this.#phase === 'closed') return;
    // After the peer's FIN, ours lets it read what is queued; otherwise the socket is gone.
    if (peerEnded) this.#writer.end();
    else this.#writer.destroy();
    this.#terminate(new MuxError('TRELLIS_ERR_LINK_CLOSED', message, { cause }));
  }

  /** Tells the peer why (GOAWAY with the wire code) and closes the link. */
  #fail(error: TrellisError, wireCode: number): void {
    if (this.#phase === 'closed') return;
    this.#writer.sendNow({ type: FrameType.GOAWAY, code: wireCode, message: wireMessage(error.message) });
    this.#writer.end();
    this.#terminate(error);
  }

  /** The session is over for its users: streams aborted, pings failed, 'close' emitted. */
  #terminate(error: TrellisError | undefined): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    clearTimeout(this.#helloTimer);
    clearTimeout(this.#resumeTimer);
    const reason = error?.message ?? 'the session closed';
    for (const stream of this.#streams.takeAll()) stream.abort(reason);
    this.#pings.failAll(error ?? new MuxError('TRELLIS_ERR_SESSION_CLOSED', 'the session closed'));
    this.emit('close', error);
  }
}
