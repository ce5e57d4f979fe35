/**
 * `payloadPieces` mode: a DATA payload that spans chunks comes out as several DATA frames,
 * each a view of the chunk it arrived in, and nothing of it is held by the decoder.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder, FrameType } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';
import { encodeStream, frameArbitrary, splitBytes } from './frame-arbitraries.js';

/** Joins runs of DATA frames of one stream, so that pieces compare equal to whole frames. */
function joinPieces(frames: readonly Frame[]): Frame[] {
  const joined: Frame[] = [];
  for (const frame of frames) {
    const last = joined.at(-1);
    if (frame.type === FrameType.DATA && last?.type === FrameType.DATA && last.streamId === frame.streamId) {
      joined[joined.length - 1] = { ...last, payload: Buffer.concat([last.payload, frame.payload]) };
    } else joined.push(frame);
  }
  return joined;
}

describe('frame decoder with payloadPieces', () => {
  it('yields the same bytes per stream and the same control frames at any split, all payloads views', () => {
    fc.assert(
      fc.property(fc.array(frameArbitrary, { maxLength: 25 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
        const { bytes } = encodeStream(frames);
        const decoder = new FrameDecoder({ payloadPieces: true });
        const decoded: Frame[] = [];
        for (const { piece } of splitBytes(bytes, cuts)) {
          decoder.push(piece, (frame) => {
            if (frame.type === FrameType.DATA && frame.payload.length > 0) assert.equal(frame.payload.buffer, piece.buffer, 'a view, not a copy');
            decoded.push(frame);
            // Nothing of a payload is ever held, only header bytes.
            assert.ok(decoder.bufferedBytes <= 1024);
          });
        }
        assert.deepEqual(joinPieces(decoded), joinPieces(frames));
      }),
      { numRuns: 300 },
    );
  });

  it('hands a 64 KiB payload split in 16 KiB reads out as views, one per read', () => {
    const payload = Buffer.alloc(64 * 1024, 9);
    const { bytes } = encodeStream([{ type: FrameType.DATA, streamId: 5, payload }]);
    const decoder = new FrameDecoder({ payloadPieces: true });
    const pieces: Buffer[] = [];
    for (let offset = 0; offset < bytes.length; offset += 16 * 1024) {
      decoder.push(bytes.subarray(offset, offset + 16 * 1024), (frame) => {
        assert.equal(frame.type, FrameType.DATA);
        if (frame.type === FrameType.DATA) pieces.push(frame.payload);
      });
    }
    assert.equal(pieces.length, 5);
    assert.deepEqual(Buffer.concat(pieces), payload);
  });
});
