/**
 * Frame encoder: `u16 headerLength | msgpack header`, then for DATA the payload untouched.
 * Pure: it returns buffers and never writes anywhere.
 */

import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { ErrorCode, ProtocolError } from './errors.js';
import { FrameType, Limits } from './frames.js';
import type { Frame } from './frames.js';
import { checkPayloadLength, checkStreamId, headerOfFrame } from './frame-header.js';

/** Bytes of the big-endian header length that precedes every header. */
const LENGTH_PREFIX_BYTES = 2;

/**
 * Encodes frames for a link. Each instance owns its msgpack packer; use one per link (or per
 * writer) rather than sharing one across the process.
 */
export class FrameEncoder {
  // Plain msgpack: no record extension, so any msgpack implementation can read the headers.
  readonly #packr = new Packr({ useRecords: false });

  /**
   * Encodes a frame's length prefix + msgpack header. For DATA the payload is NOT included
   * (write `frame.payload` after it, untouched).
   *
   * The returned buffer stays valid after later calls: the packer never rewrites bytes it has
   * handed out.
   * @throws ProtocolError when a field breaks the rules the decoder enforces
   *   (`TRELLIS_ERR_BAD_FIELD`, `TRELLIS_ERR_FRAME_TOO_LARGE`, `TRELLIS_ERR_UNKNOWN_FRAME_TYPE`,
   *   `TRELLIS_ERR_HEADER_TOO_LARGE`), so a peer never receives a frame it must reject.
   */
  encodeHeader(frame: Frame): Buffer {
    return this.#packHeader(headerOfFrame(frame));
  }

  /**
   * The head of a DATA frame whose payload of `payloadLength` bytes the caller writes after it,
   * in as many buffers as it likes (a frame can carry several chunks without joining them).
   * @throws ProtocolError `TRELLIS_ERR_BAD_FIELD` or `TRELLIS_ERR_FRAME_TOO_LARGE`.
   */
  encodeDataHeader(streamId: number, payloadLength: number): Buffer {
    return this.#packHeader([FrameType.DATA, checkStreamId(streamId), checkPayloadLength(payloadLength, Limits.MAX_DATA_PAYLOAD_BYTES)]);
  }

  #packHeader(header: unknown[]): Buffer {
    // The packer leaves room for the length prefix in front of the header, so the frame head
    // comes out as one buffer without a copy.
    const bytes = this.#packr.pack(header, RESERVE_START_SPACE | LENGTH_PREFIX_BYTES);
    const headerLength = bytes.length - LENGTH_PREFIX_BYTES;
    if (headerLength > Limits.MAX_HEADER_BYTES) {
      throw new ProtocolError(
        'TRELLIS_ERR_HEADER_TOO_LARGE',
        `frame header of ${headerLength} bytes exceeds ${Limits.MAX_HEADER_BYTES}`,
        ErrorCode.FRAME_TOO_LARGE,
      );
    }
    bytes.writeUInt16BE(headerLength, 0);
    return bytes;
  }

  /**
   * Encodes a whole frame as buffers to write in order: `[header, payload]` for DATA (the
   * payload is `frame.payload` itself, not a copy), `[header]` otherwise.
   * @throws ProtocolError as {@link FrameEncoder.encodeHeader}.
   */
  encode(frame: Frame): Buffer[] {
    const header = this.encodeHeader(frame);
    return frame.type === FrameType.DATA ? [header, frame.payload] : [header];
  }
}
