/**
 * The streams of one session: id allocation by role, the id rules for the peer's OPENs, and
 * a bounded memory of streams reset here whose late frames are ignored.
 */

/** Sends RESET PROTOCOL_ERROR for a stream the peer misused (a stream error, not a link error). */
export type StreamErrorSender = (streamId: number, message: string) => void;

import { FrameType, Limits, ProtocolError } from '../../proto/index.js';
import type { DataFrame, FinFrame, ResetFrame, TunnelDrainFrame, WindowFrame } from '../../proto/index.js';
import { RecentStreamIds } from './recent-stream-ids.js';
import type { MuxStream } from './stream.js';

/** Open streams by id, in both directions. */
export class StreamTable {
  readonly #streams = new Map<number, MuxStream>();
  /** Streams reset or refused here, whose in-flight frames from the peer are ignored. */
  readonly #recentlyReset = new RecentStreamIds();
  /** Stream ids of the peer have this remainder modulo 2. */
  readonly #peerParity: number;
  #nextLocalStreamId: number;
  #lastPeerStreamId = 0;
  #peerStreamsActive = 0;
  #openedStreams = 0;

  readonly #streamError: StreamErrorSender;

  /** The dialer's streams have odd ids, the acceptor's even ones. */
  constructor(role: 'dialer' | 'acceptor', streamError: StreamErrorSender) {
    this.#streamError = streamError;
    this.#peerParity = role === 'dialer' ? 0 : 1;
    this.#nextLocalStreamId = role === 'dialer' ? 1 : 2;
  }

  /** The id the next stream opened here gets, or undefined once ids are exhausted. */
  peekLocalStreamId(): number | undefined {
    return this.#nextLocalStreamId <= Limits.MAX_STREAM_ID ? this.#nextLocalStreamId : undefined;
  }

  /** Adds a stream opened here with the id from {@link StreamTable.peekLocalStreamId}. */
  addLocal(stream: MuxStream): void {
    this.#nextLocalStreamId = stream.id + 2;
    this.#streams.set(stream.id, stream);
    this.#openedStreams++;
  }

  /**
   * Checks the id of the peer's OPEN: the peer's parity, and above every id it used before
   * (which rules out reuse without remembering closed streams).
   * @throws ProtocolError `TRELLIS_ERR_STREAM_ID`.
   */
  acceptPeerStreamId(streamId: number): void {
    if (streamId % 2 !== this.#peerParity) {
      throw new ProtocolError('TRELLIS_ERR_STREAM_ID', `OPEN of stream ${streamId}, an id of this end's parity`);
    }
    if (streamId <= this.#lastPeerStreamId) {
      throw new ProtocolError('TRELLIS_ERR_STREAM_ID', `OPEN of stream ${streamId}, not above the last one (${this.#lastPeerStreamId})`);
    }
    this.#lastPeerStreamId = streamId;
  }

  /** Adds a stream the peer opened (its id passed {@link StreamTable.acceptPeerStreamId}). */
  addPeer(stream: MuxStream): void {
    this.#streams.set(stream.id, stream);
    this.#peerStreamsActive++;
    this.#openedStreams++;
  }

  /** Forgets a closed stream; one reset here is remembered so its late frames are ignored. */
  remove(stream: MuxStream, resetHere: boolean): void {
    if (!this.#streams.delete(stream.id)) return;
    if (stream.id % 2 === this.#peerParity) this.#peerStreamsActive--;
    if (resetHere) this.#recentlyReset.add(stream.id);
  }

  /** Remembers a stream refused before it entered the table: DATA may follow its OPEN. */
  rememberRefused(streamId: number): void {
    this.#recentlyReset.add(streamId);
  }

  /**
   * Hands a stream's frame to its stream.
   * @throws ProtocolError `TRELLIS_ERR_STREAM_ID` for any frame on a stream id that was never
   *   opened, and `TRELLIS_ERR_FLOW_CONTROL` for DATA beyond credit. DATA or FIN after the
   *   peer's FIN is a stream error: that stream is reset with PROTOCOL_ERROR and the link stays.
   *   Frames on a stream that is done are ignored when they may have crossed its end (WINDOW,
   *   RESET, or anything after a reset here).
   */
  route(frame: DataFrame | WindowFrame | FinFrame | ResetFrame): void {
    const stream = this.#streams.get(frame.streamId);
    if (stream === undefined) return this.#routeToDoneStream(frame);
    switch (frame.type) {
      case FrameType.DATA:
        stream.receiveData(frame.payload);
        return;
      case FrameType.FIN:
        stream.receiveFin();
        return;
      case FrameType.WINDOW:
        stream.receiveCredit(frame.creditBytes);
        return;
      case FrameType.RESET:
        stream.receiveReset(frame.code, frame.message);
        return;
    }
  }

  /**
   * Hands a TUNNEL_DRAIN to its tunnel stream; ignored on a stream that is done (it may have
   * crossed the stream's end).
   * @throws ProtocolError `TRELLIS_ERR_STREAM_ID` on a stream id that was never opened,
   *   `TRELLIS_ERR_UNEXPECTED_FRAME` on a stream that is not a tunnel.
   */
  routeTunnelDrain(frame: TunnelDrainFrame): void {
    const stream = this.#streams.get(frame.streamId);
    if (stream === undefined) {
      if (!this.#wasOpened(frame.streamId)) throw new ProtocolError('TRELLIS_ERR_STREAM_ID', `TUNNEL_DRAIN on stream ${frame.streamId}, which was never opened`);
      return;
    }
    if (!stream.tunnel) throw new ProtocolError('TRELLIS_ERR_UNEXPECTED_FRAME', `TUNNEL_DRAIN on stream ${frame.streamId}, which is not a tunnel`);
    stream.receiveTunnelDrain(frame.gateway);
  }

  #routeToDoneStream(frame: DataFrame | WindowFrame | FinFrame | ResetFrame): void {
    const { streamId } = frame;
    if (!this.#wasOpened(streamId)) {
      throw new ProtocolError('TRELLIS_ERR_STREAM_ID', `frame of type ${frame.type} on stream ${streamId}, which was never opened`);
    }
    // A WINDOW crossed this end's FIN or reset; a RESET crossed ours: nothing to do. After a
    // reset here, DATA and FIN still in flight are expected too.
    if (frame.type === FrameType.WINDOW || frame.type === FrameType.RESET || this.#recentlyReset.has(streamId)) return;
    // The stream ended with both FINs, so the peer had already sent its FIN.
    this.#recentlyReset.add(streamId);
    this.#streamError(streamId, `${frame.type === FrameType.DATA ? 'DATA' : 'FIN'} after FIN on stream ${streamId}`);
  }

  /** Whether `streamId` belongs to a stream opened at some point (by either end). */
  #wasOpened(streamId: number): boolean {
    return streamId % 2 === this.#peerParity ? streamId <= this.#lastPeerStreamId : streamId < this.#nextLocalStreamId;
  }

  /** Removes and returns every stream. */
  takeAll(): MuxStream[] {
    const streams = [...this.#streams.values()];
    this.#streams.clear();
    this.#peerStreamsActive = 0;
    return streams;
  }

  values(): IterableIterator<MuxStream> {
    return this.#streams.values();
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Streams the peer opened that are open now. */
  get peerStreamsActive(): number {
    return this.#peerStreamsActive;
  }

  /** Streams opened since the session started, both directions. */
  get openedStreams(): number {
    return this.#openedStreams;
  }
}
