/**
 * Garbage in: whatever the bytes, the decoder throws only ProtocolError, buffers no more than
 * its limits allow, and every frame it does yield is one the encoder would write.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { FrameDecoder, FrameEncoder, Limits, ProtocolError } from '../../proto/index.js';
import type { DecoderLimits, Frame } from '../../proto/index.js';
import { encodeStream, frameArbitrary, splitBytes } from './frame-arbitraries.js';

const DEFAULT_LIMITS: DecoderLimits = {
  maxHeaderBytes: Limits.MAX_HEADER_BYTES,
  maxDataPayloadBytes: Limits.MAX_DATA_PAYLOAD_BYTES,
};
const SMALL_LIMITS: DecoderLimits = { maxHeaderBytes: 16, maxDataPayloadBytes: 64 };

/** Feeds `bytes` cut at `cuts` and checks the garbage-in properties. */
function checkGarbage(bytes: Buffer, cuts: readonly number[], limits: DecoderLimits): void {
  const decoder = new FrameDecoder(limits);
  const encoder = new FrameEncoder();
  const bound = limits.maxHeaderBytes + limits.maxDataPayloadBytes + 2;
  // The encoder's rules match the decoder's: every frame yielded must be writable again
  // (payload limits aside, so only with the protocol's limits).
  const onFrame = (frame: Frame) => {
    if (limits !== DEFAULT_LIMITS) return;
    assert.doesNotThrow(() => encoder.encodeHeader(frame), `decoded ${JSON.stringify(frame)} but cannot encode it`);
  };
  for (const { piece } of splitBytes(bytes, cuts)) {
    try {
      decoder.push(piece, onFrame);
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error;
      assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
      assert.throws(() => decoder.push(piece, () => undefined), ProtocolError);
      return;
    }
    assert.ok(decoder.bufferedBytes <= bound, `buffered ${decoder.bufferedBytes} > ${bound}`);
  }
}

const limitsArbitrary = fc.constantFrom(DEFAULT_LIMITS, SMALL_LIMITS);
const cutsArbitrary = fc.array(fc.nat(), { maxLength: 12 });

/** A u16 length prefix (usually small enough to pass) followed by random bytes. */
const framedGarbage = fc
  .tuple(fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffff })), fc.uint8Array({ maxLength: 300 }))
  .map(([headerLength, rest]) => {
    const bytes = Buffer.alloc(2 + rest.length);
    bytes.writeUInt16BE(headerLength);
    bytes.set(rest, 2);
    return bytes;
  });

/** Well-formed msgpack arrays with a plausible frame type and fields of any kind. */
const msgpackGarbage = fc
  .tuple(
    fc.integer({ min: -1, max: 9 }),
    fc.array(fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 70 }), fc.constant(null), fc.boolean()), {
      maxLength: 4,
    }),
    fc.uint8Array({ maxLength: 80 }),
  )
  .map(([type, fields, tail]) => {
    const header = new Packr({ useRecords: false }).pack([type, ...fields]);
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(header.length);
    return Buffer.concat([prefix, header, tail]);
  });

/** Valid frames with some bytes overwritten, and the stream maybe cut short. */
const mutatedStream = fc
  .tuple(
    fc.array(frameArbitrary, { minLength: 1, maxLength: 6 }),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    fc.nat(),
  )
  .map(([frames, edits, cut]) => {
    const { bytes } = encodeStream(frames);
    for (const [at, value] of edits) bytes[at % bytes.length] = value;
    return bytes.subarray(0, bytes.length - (cut % 8));
  });

describe('frame decoder fed garbage', () => {
  it('throws only ProtocolError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), cutsArbitrary, limitsArbitrary, (bytes, cuts, limits) =>
        checkGarbage(Buffer.from(bytes), cuts, limits),
      ),
      { numRuns: 500 },
    );
  });

  it('throws only ProtocolError on random bytes behind a plausible header length', () => {
    fc.assert(
      fc.property(framedGarbage, cutsArbitrary, limitsArbitrary, (bytes, cuts, limits) =>
        checkGarbage(bytes, cuts, limits),
      ),
      { numRuns: 1000 },
    );
  });

  it('throws only ProtocolError on msgpack headers with wrong fields', () => {
    fc.assert(
      fc.property(msgpackGarbage, cutsArbitrary, limitsArbitrary, (bytes, cuts, limits) =>
        checkGarbage(bytes, cuts, limits),
      ),
      { numRuns: 1000 },
    );
  });

  it('throws only ProtocolError on corrupted valid streams', () => {
    fc.assert(
      fc.property(mutatedStream, cutsArbitrary, limitsArbitrary, (bytes, cuts, limits) =>
        checkGarbage(bytes, cuts, limits),
      ),
      { numRuns: 500 },
    );
  });
});
