/**
 * Codec properties: every frame survives encode → decode, whatever way the byte stream is
 * split, and DATA payloads that arrive in one chunk are views of it.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameDecoder, FrameEncoder, FrameType } from '../../proto/index.js';
import type { DataFrame, Frame } from '../../proto/index.js';
import { decodeChunks, encodeStream, frameArbitraries, frameArbitrary, ownedCopy, splitBytes } from './frame-arbitraries.js';

describe('frame codec round trip', () => {
  for (const [name, arbitrary] of Object.entries(frameArbitraries)) {
    it(`decodes every ${name} frame it encodes`, () => {
      fc.assert(
        fc.property(arbitrary, (frame) => {
          const { bytes } = encodeStream([frame]);
          assert.deepEqual(decodeChunks([bytes]), [frame]);
        }),
        { numRuns: 300 },
      );
    });
  }

  it('writes the documented bytes (golden vectors)', () => {
    const encoder = new FrameEncoder();
    const hexOf = (frame: Frame) => Buffer.concat(encoder.encode(frame)).toString('hex');
    assert.equal(hexOf({ type: FrameType.HELLO, minVersion: 1, maxVersion: 1, initialWindowBytes: 65536 }), '000994000101ce00010000');
    assert.equal(hexOf({ type: FrameType.PING, nonce: 5 }), '0003920105');
    assert.equal(hexOf({ type: FrameType.OPEN, streamId: 1, service: 'db' }), '0006930401a26462');
    assert.equal(hexOf({ type: FrameType.DATA, streamId: 3, payload: Buffer.from('hi') }), '0004930503026869');
    assert.equal(hexOf({ type: FrameType.FIN, streamId: 3 }), '0003920703');
  });

  it('decodes the largest DATA payload the limits allow', () => {
    const payload = Buffer.alloc(256 * 1024, 7);
    const frame: Frame = { type: FrameType.DATA, streamId: 1, payload };
    assert.deepEqual(decodeChunks([encodeStream([frame]).bytes]), [frame]);
  });
});

describe('frame decoder fed a split byte stream', () => {
  it('yields the same frames at any split points, with views for payloads inside one piece', () => {
    fc.assert(
      fc.property(
        fc.array(frameArbitrary, { maxLength: 25 }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (frames, cuts) => {
          const { bytes, spans } = encodeStream(frames);
          const pieces = splitBytes(bytes, cuts);
          const decoder = new FrameDecoder();
          const decoded: Frame[] = [];
          const pieceOf: Buffer[] = [];
          for (const { piece } of pieces) {
            decoder.push(piece, (frame) => {
              decoded.push(frame);
              pieceOf.push(piece);
            });
          }
          assert.deepEqual(decoded, frames);
          assert.equal(decoder.bufferedBytes, 0);
          decoded.forEach((frame, index) => {
            if (frame.type !== FrameType.DATA || frame.payload.length === 0) return;
            const payloadStart = spans[index]!.end - frame.payload.length;
            const inOnePiece = pieces.some(
              ({ piece, start }) => start <= payloadStart && spans[index]!.end <= start + piece.length,
            );
            assertPayloadSource(frame, pieces, pieceOf[index]!, inOnePiece);
          });
        },
      ),
      { numRuns: 300 },
    );
  });

  it('yields the same frames when fed one byte at a time', () => {
    fc.assert(
      fc.property(fc.array(frameArbitrary, { maxLength: 8 }), (frames) => {
        const { bytes } = encodeStream(frames);
        const decoder = new FrameDecoder();
        const decoded: Frame[] = [];
        for (let index = 0; index < bytes.length; index++) {
          decoder.push(bytes.subarray(index, index + 1), (frame) => decoded.push(frame));
          assert.ok(decoder.bufferedBytes <= 1024 + 256 * 1024 + 2);
        }
        assert.deepEqual(decoded, frames);
      }),
      { numRuns: 60 },
    );
  });

  it('hands out a payload that fits in the chunk as a view of that chunk', () => {
    const frames: Frame[] = [
      { type: FrameType.DATA, streamId: 1, payload: Buffer.from('first') },
      { type: FrameType.WINDOW, streamId: 1, creditBytes: 5 },
      { type: FrameType.DATA, streamId: 3, payload: Buffer.from('second payload') },
    ];
    const { bytes } = encodeStream(frames);
    // The chunk sits in the middle of a larger ArrayBuffer, as socket reads often do.
    const backing = Buffer.alloc(bytes.length + 64);
    bytes.copy(backing, 32);
    const chunk = backing.subarray(32, 32 + bytes.length);
    const decoded = decodeChunks([chunk]);
    assert.deepEqual(decoded, frames);
    for (const frame of decoded.filter((f): f is DataFrame => f.type === FrameType.DATA)) {
      assert.equal(frame.payload.buffer, chunk.buffer);
      assert.ok(frame.payload.byteOffset >= chunk.byteOffset);
      assert.ok(frame.payload.byteOffset + frame.payload.length <= chunk.byteOffset + chunk.length);
    }
  });

  it('hands out a view when the header ended the previous chunk', () => {
    const { bytes } = encodeStream([{ type: FrameType.DATA, streamId: 1, payload: Buffer.from('abc') }]);
    const headerEnd = bytes.length - 3;
    const second = ownedCopy(bytes.subarray(headerEnd));
    const decoded = decodeChunks([ownedCopy(bytes.subarray(0, headerEnd)), second]);
    assert.equal(decoded.length, 1);
    assert.equal((decoded[0] as DataFrame).payload.buffer, second.buffer);
  });

  it('reports the bytes it holds while a frame is incomplete', () => {
    const { bytes } = encodeStream([{ type: FrameType.DATA, streamId: 1, payload: Buffer.alloc(100, 1) }]);
    const decoder = new FrameDecoder();
    const decoded: Frame[] = [];
    const onFrame = (frame: Frame) => decoded.push(frame);
    decoder.push(bytes.subarray(0, 1), onFrame);
    assert.equal(decoder.bufferedBytes, 1);
    decoder.push(bytes.subarray(1, 4), onFrame);
    assert.equal(decoder.bufferedBytes, 2);
    decoder.push(bytes.subarray(4, 6), onFrame);
    assert.equal(decoder.bufferedBytes, 0);
    decoder.push(bytes.subarray(6, 56), onFrame);
    assert.equal(decoder.bufferedBytes, 50);
    decoder.push(bytes.subarray(56), onFrame);
    assert.equal(decoder.bufferedBytes, 0);
    assert.equal(decoded.length, 1);
  });
});

/** A payload inside one piece is a view of it; one split across pieces is a copy of its own. */
function assertPayloadSource(frame: DataFrame, pieces: readonly { piece: Buffer }[], lastPiece: Buffer, inOnePiece: boolean): void {
  if (inOnePiece) {
    assert.equal(frame.payload.buffer, lastPiece.buffer, 'payload inside one chunk must be a view of it');
  } else {
    assert.ok(pieces.every(({ piece }) => piece.buffer !== frame.payload.buffer), 'split payload must be copied');
  }
}
