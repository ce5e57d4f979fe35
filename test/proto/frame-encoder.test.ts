/**
 * Encoder: it writes only frames the decoder accepts, leaves DATA payloads untouched, and the
 * buffers it returns stay valid across later calls.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, FrameEncoder, FrameType, Limits } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { decodeChunks, frameArbitrary } from './frame-arbitraries.js';

describe('frame encoder', () => {
  it('returns the DATA payload itself after the header', () => {
    const payload = Buffer.from('untouched');
    const parts = new FrameEncoder().encode({ type: FrameType.DATA, streamId: 1, payload });
    assert.equal(parts.length, 2);
    assert.equal(parts[1], payload);
    assert.equal(new FrameEncoder().encode({ type: FrameType.FIN, streamId: 1 }).length, 1);
  });

  it('returns headers that later calls do not overwrite', () => {
    fc.assert(
      fc.property(fc.array(frameArbitrary, { minLength: 200, maxLength: 400 }), (frames) => {
        const encoder = new FrameEncoder();
        // All frames are encoded before any is read, across several of the packer's buffers.
        const parts = frames.flatMap((frame) => encoder.encode(frame));
        assert.deepEqual(decodeChunks([Buffer.concat(parts)]), frames);
      }),
      { numRuns: 20 },
    );
  });

  it('refuses frames the decoder would reject', () => {
    const encoder = new FrameEncoder();
    const bad: [Frame, string][] = [
      [{ type: FrameType.FIN, streamId: 0 }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.FIN, streamId: Limits.MAX_STREAM_ID + 1 }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.DATA, streamId: 1.5, payload: Buffer.alloc(1) }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.WINDOW, streamId: 1, creditBytes: 0 }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.HELLO, minVersion: 2, maxVersion: 1, initialWindowBytes: 1 }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.PING, nonce: -1 }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.OPEN, streamId: 1, service: 'Not_A_Label' }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.GOAWAY, code: 0, message: 'é'.repeat(257) }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: FrameType.RESET, streamId: 1, code: 2 ** 32, message: '' }, 'TRELLIS_ERR_BAD_FIELD'],
      [{ type: 42 } as unknown as Frame, 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE'],
    ];
    for (const [frame, code] of bad) {
      assert.throws(() => encoder.encodeHeader(frame), { code }, JSON.stringify(frame));
    }
    const tooLarge: Frame = { type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(Limits.MAX_DATA_PAYLOAD_BYTES + 1) };
    assert.throws(() => encoder.encode(tooLarge), { code: 'TRELLIS_ERR_FRAME_TOO_LARGE', wireCode: ErrorCode.FRAME_TOO_LARGE });
  });
});
