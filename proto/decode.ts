/**
 * Incremental frame decoder: a state machine over `u16 headerLength | msgpack header |
 * payload`, fed whatever chunks the transport reads. Every declared length is checked against
 * the limits before a byte of what it announces is buffered.
 */

import { Unpackr } from 'msgpackr';
import { ErrorCode, ProtocolError } from './errors.js';
import { FrameType, Limits } from './frames.js';
import type { Frame } from './frames.js';
import { checkPayloadLength, checkStreamId, controlFrameFromHeader, headerFrameType } from './frame-header.js';

/** Limits a decoder enforces; each defaults to the protocol's value in {@link Limits}. */
export interface DecoderLimits {
  /**
   * Largest header accepted, in bytes (1..65535).
   * @default Limits.MAX_HEADER_BYTES
   */
  maxHeaderBytes: number;
  /**
   * Largest DATA payload accepted, in bytes.
   * @default Limits.MAX_DATA_PAYLOAD_BYTES
   */
  maxDataPayloadBytes: number;
}

/** Limits, and how DATA payloads are handed out. */
export interface DecoderOptions extends DecoderLimits {
  /**
   * Hand a DATA payload that spans chunks out in pieces, each a view of the chunk it arrived
   * in, rather than copied into one buffer: consecutive DATA frames of one stream then carry
   * the frame's payload in order. A byte-stream consumer (the multiplexer) loses nothing, and
   * the decoder allocates nothing per byte, which keeps the garbage collector quiet at line
   * rate (every allocated payload buffer counts as external memory, and V8 runs a full mark
   * for every 64 MB of it).
   * @default false
   */
  payloadPieces: boolean;
}

/** What the decoder waits for next. */
const READ_LENGTH = 0;
const READ_HEADER = 1;
const READ_PAYLOAD = 2;
type DecoderState = typeof READ_LENGTH | typeof READ_HEADER | typeof READ_PAYLOAD;

/** No half-read length byte is held. */
const NO_BYTE = -1;

/**
 * Incremental decoder. Feed it any split of the byte stream; it calls `onFrame` for each
 * complete frame, in order.
 *
 * A DATA payload that lies wholly inside one pushed chunk is handed out as a view of that
 * chunk (no copy): the caller must not reuse a chunk's memory while its payloads are alive.
 * A payload split across chunks is copied once into a buffer of exactly its size, or, with
 * `payloadPieces`, handed out as several DATA frames, each a view of the chunk it came in.
 */
export class FrameDecoder {
  readonly #maxHeaderBytes: number;
  readonly #maxDataPayloadBytes: number;
  readonly #payloadPieces: boolean;
  // Plain msgpack; 64-bit integers come out as numbers so that range checks, not types,
  // decide whether a value is acceptable.
  readonly #unpackr = new Unpackr({ useRecords: false, int64AsType: 'number' });
  /** Reused range argument of the unpacker, so decoding a header allocates nothing of ours. */
  readonly #range = { start: 0, end: 0 };
  /** Holds a header split across chunks; allocated on first need, reused after. */
  #headerScratch: Buffer | null = null;

  #state: DecoderState = READ_LENGTH;
  #lengthHighByte = NO_BYTE;
  #headerLength = 0;
  #headerFilled = 0;
  #streamId = 0;
  #payloadLength = 0;
  /** The payload being assembled across chunks, once one chunk did not hold all of it. */
  #payload: Buffer | null = null;
  #payloadFilled = 0;
  /** Set once push() has thrown: the decoder is dead and throws it again. */
  #failure: { error: unknown } | null = null;

  /** @throws RangeError for limits outside what the wire format can express. */
  constructor(limits: Partial<DecoderOptions> = {}) {
    this.#maxHeaderBytes = limits.maxHeaderBytes ?? Limits.MAX_HEADER_BYTES;
    this.#maxDataPayloadBytes = limits.maxDataPayloadBytes ?? Limits.MAX_DATA_PAYLOAD_BYTES;
    this.#payloadPieces = limits.payloadPieces ?? false;
    if (!Number.isInteger(this.#maxHeaderBytes) || this.#maxHeaderBytes < 1 || this.#maxHeaderBytes > 0xffff) {
      throw new RangeError('maxHeaderBytes must be an integer in 1..65535');
    }
    if (!Number.isSafeInteger(this.#maxDataPayloadBytes) || this.#maxDataPayloadBytes < 0) {
      throw new RangeError('maxDataPayloadBytes must be a non-negative integer');
    }
  }

  /**
   * Decodes `chunk`, calling `onFrame` for each frame it completes.
   *
   * Throws ProtocolError on malformed input; after a throw (including one from `onFrame`) the
   * decoder is dead and further calls throw the same error again.
   */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    if (this.#failure !== null) throw this.#failure.error;
    try {
      this.#consume(chunk, onFrame);
    } catch (error) {
      this.#failure = { error };
      this.#headerScratch = null;
      this.#payload = null;
      throw error;
    }
  }

  /**
   * Bytes held waiting for the rest of a frame: at most 1 length byte, or the header bytes
   * read so far, or the payload bytes read so far (a split payload's buffer is allocated at
   * its declared size when its first bytes arrive). Bounded by the decoder's limits.
   */
  get bufferedBytes(): number {
    switch (this.#state) {
      case READ_LENGTH:
        return this.#lengthHighByte === NO_BYTE ? 0 : 1;
      case READ_HEADER:
        return this.#headerFilled;
      case READ_PAYLOAD:
        // Pieces are handed out as they arrive: nothing of the payload is held then.
        return this.#payload === null ? 0 : this.#payloadFilled;
    }
  }

  #consume(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    const end = chunk.length;
    let offset = 0;
    while (offset < end) {
      switch (this.#state) {
        case READ_LENGTH: {
          let headerLength: number;
          if (this.#lengthHighByte !== NO_BYTE) {
            headerLength = (this.#lengthHighByte << 8) | chunk[offset++]!;
            this.#lengthHighByte = NO_BYTE;
          } else if (end - offset >= 2) {
            headerLength = chunk.readUInt16BE(offset);
            offset += 2;
          } else {
            this.#lengthHighByte = chunk[offset++]!;
            break;
          }
          this.#checkHeaderLength(headerLength);
          this.#headerLength = headerLength;
          this.#headerFilled = 0;
          this.#state = READ_HEADER;
          break;
        }
        case READ_HEADER: {
          const headerLength = this.#headerLength;
          let header: unknown;
          if (this.#headerFilled === 0 && end - offset >= headerLength) {
            header = this.#unpack(chunk, offset, offset + headerLength);
            offset += headerLength;
          } else {
            const scratch = (this.#headerScratch ??= Buffer.allocUnsafeSlow(this.#maxHeaderBytes));
            const take = Math.min(headerLength - this.#headerFilled, end - offset);
            chunk.copy(scratch, this.#headerFilled, offset, offset + take);
            this.#headerFilled += take;
            offset += take;
            if (this.#headerFilled < headerLength) break;
            header = this.#unpack(scratch, 0, headerLength);
          }
          this.#headerFilled = 0;
          offset = this.#onHeader(header, chunk, offset, onFrame);
          break;
        }
        case READ_PAYLOAD: {
          if (this.#payloadPieces) {
            offset = this.#emitPiece(chunk, offset, onFrame);
            break;
          }
          const payloadLength = this.#payloadLength;
          if (this.#payload === null) {
            // Nothing of the payload is held yet: when the header ended the previous chunk,
            // this one may hold the whole payload, and then it is handed out as a view.
            if (end - offset >= payloadLength) {
              const payload = chunk.subarray(offset, offset + payloadLength);
              offset += payloadLength;
              this.#state = READ_LENGTH;
              onFrame({ type: FrameType.DATA, streamId: this.#streamId, payload });
              break;
            }
            // Allocated at the declared size (already checked against the limit) and filled as
            // chunks arrive: one copy per byte, and no pinning of the transport's read buffers.
            // Every byte is written before the frame is handed out, so unzeroed memory is safe.
            this.#payload = Buffer.allocUnsafe(payloadLength);
          }
          const payload = this.#payload;
          const take = Math.min(payloadLength - this.#payloadFilled, end - offset);
          chunk.copy(payload, this.#payloadFilled, offset, offset + take);
          this.#payloadFilled += take;
          offset += take;
          if (this.#payloadFilled === payloadLength) {
            this.#payload = null;
            this.#payloadFilled = 0;
            this.#state = READ_LENGTH;
            onFrame({ type: FrameType.DATA, streamId: this.#streamId, payload });
          }
          break;
        }
      }
    }
  }

  /**
   * Turns a decoded header into a frame, or starts reading a DATA payload that goes beyond
   * `chunk`. Returns the offset in `chunk` after what it consumed.
   */
  #onHeader(header: unknown, chunk: Buffer, offset: number, onFrame: (frame: Frame) => void): number {
    const type = headerFrameType(header);
    // headerFrameType has checked that the header is an array of the type's length.
    const fields = header as readonly unknown[];
    if (type !== FrameType.DATA) {
      const frame = controlFrameFromHeader(fields, type);
      this.#state = READ_LENGTH;
      onFrame(frame);
      return offset;
    }
    const streamId = checkStreamId(fields[1]);
    const payloadLength = checkPayloadLength(fields[2], this.#maxDataPayloadBytes);
    if (chunk.length - offset >= payloadLength) {
      // The common case on a busy link: the payload is already here, hand out a view.
      this.#state = READ_LENGTH;
      onFrame({ type: FrameType.DATA, streamId, payload: chunk.subarray(offset, offset + payloadLength) });
      return offset + payloadLength;
    }
    // The payload runs past this chunk, or starts in the next one: READ_PAYLOAD picks
    // between a view and a copy once it sees the bytes.
    this.#streamId = streamId;
    this.#payloadLength = payloadLength;
    this.#state = READ_PAYLOAD;
    return offset;
  }

  /** In `payloadPieces` mode: hands out what `chunk` holds of the current payload as a view. */
  #emitPiece(chunk: Buffer, offset: number, onFrame: (frame: Frame) => void): number {
    const take = Math.min(this.#payloadLength - this.#payloadFilled, chunk.length - offset);
    this.#payloadFilled += take;
    if (this.#payloadFilled === this.#payloadLength) {
      this.#payloadFilled = 0;
      this.#state = READ_LENGTH;
    }
    onFrame({ type: FrameType.DATA, streamId: this.#streamId, payload: chunk.subarray(offset, offset + take) });
    return offset + take;
  }

  #checkHeaderLength(headerLength: number): void {
    if (headerLength === 0) {
      throw new ProtocolError('TRELLIS_ERR_BAD_HEADER', 'empty frame header');
    }
    if (headerLength > this.#maxHeaderBytes) {
      throw new ProtocolError(
        'TRELLIS_ERR_HEADER_TOO_LARGE',
        `frame header of ${headerLength} bytes exceeds ${this.#maxHeaderBytes}`,
        ErrorCode.FRAME_TOO_LARGE,
      );
    }
  }

  /** Decodes the msgpack value that must fill `bytes[start, end)` exactly. */
  #unpack(bytes: Buffer, start: number, end: number): unknown {
    const range = this.#range;
    range.start = start;
    range.end = end;
    try {
      // The unpacker itself rejects a value that stops short of `end` (trailing bytes) or
      // runs past it (truncated). It caches a DataView on `bytes`, so decoding many headers
      // straight from one chunk costs one view per chunk, not one per frame.
      return this.#unpackr.unpack(bytes, range) as unknown;
    } catch {
      throw new ProtocolError('TRELLIS_ERR_BAD_HEADER', 'frame header is not one msgpack value');
    }
  }
}
