/**
 * Decoder errors from hand-written bytes: each error code, the limits checked before
 * buffering, and the dead decoder after a throw.
 */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Packr } from 'msgpackr';
import { ErrorCode, FrameDecoder, FrameType, ProtocolError } from '../../proto/index.js';
import type { Frame, ProtocolErrorCode } from '../../proto/index.js';
import { hex } from './frame-arbitraries.js';

/** Pushes each chunk in turn and returns what the decoder yielded. */
function feed(decoder: FrameDecoder, ...chunks: Buffer[]): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => frames.push(frame));
  return frames;
}

function assertRejects(bytes: Buffer, code: ProtocolErrorCode, wireCode: number = ErrorCode.PROTOCOL_ERROR): void {
  assert.throws(
    () => feed(new FrameDecoder(), bytes),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${String(error)}`);
      assert.equal(error.code, code, `bytes ${bytes.toString('hex')}`);
      assert.equal(error.wireCode, wireCode);
      return true;
    },
  );
}

/** A frame whose header is `header` packed as plain msgpack, for headers too long to write by hand. */
function packed(header: unknown[]): Buffer {
  const body = new Packr({ useRecords: false }).pack(header);
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(body.length);
  return Buffer.concat([prefix, body]);
}

describe('frame decoder errors', () => {
  it('rejects an oversized header length after only its 2 length bytes', () => {
    assertRejects(hex('04 01'), 'TRELLIS_ERR_HEADER_TOO_LARGE', ErrorCode.FRAME_TOO_LARGE);
    assertRejects(hex('ff ff'), 'TRELLIS_ERR_HEADER_TOO_LARGE', ErrorCode.FRAME_TOO_LARGE);
    const decoder = new FrameDecoder();
    feed(decoder, hex('04'));
    assert.throws(() => feed(decoder, hex('01')), { code: 'TRELLIS_ERR_HEADER_TOO_LARGE' });
  });

  it('applies a custom header limit exactly', () => {
    // [1, 4294967295]: 7 header bytes.
    const ping = hex('00 07 92 01 ce ff ff ff ff');
    assert.deepEqual(feed(new FrameDecoder({ maxHeaderBytes: 7 }), ping), [{ type: FrameType.PING, nonce: 0xffffffff }]);
    assert.throws(() => feed(new FrameDecoder({ maxHeaderBytes: 6 }), ping), { code: 'TRELLIS_ERR_HEADER_TOO_LARGE' });
  });

  it('rejects a header length of 0 as a bad header', () => {
    assertRejects(hex('00 00'), 'TRELLIS_ERR_BAD_HEADER');
  });

  it('rejects an oversized DATA length before any of its payload arrives', () => {
    // [5, 1, 262145]
    assertRejects(hex('00 08 93 05 01 ce 00 04 00 01'), 'TRELLIS_ERR_FRAME_TOO_LARGE', ErrorCode.FRAME_TOO_LARGE);
    assert.throws(() => feed(new FrameDecoder({ maxDataPayloadBytes: 2 }), hex('00 04 93 05 01 03')), {
      code: 'TRELLIS_ERR_FRAME_TOO_LARGE',
    });
  });

  it('accepts a DATA length at the limit and holds nothing before the payload', () => {
    const decoder = new FrameDecoder();
    // [5, 1, 262144]
    assert.deepEqual(feed(decoder, hex('00 08 93 05 01 ce 00 04 00 00')), []);
    assert.equal(decoder.bufferedBytes, 0);
    const frames = feed(decoder, Buffer.alloc(100_000), Buffer.alloc(162_144));
    assert.equal(frames.length, 1);
    assert.equal((frames[0] as { payload: Buffer }).payload.length, 262_144);
  });

  it('rejects TUNNEL headers that break the path, hop or target rules', () => {
    const path = ['a/ga', 'c/gc'];
    const bad: unknown[][] = [
      [FrameType.TUNNEL, 1, [], 0, 'sc-1'],
      [FrameType.TUNNEL, 1, ['a/g1', 'b/g2', 'c/g3', 'd/g4', 'e/g5'], 0, 'sc-1'],
      [FrameType.TUNNEL, 1, ['a/ga', 'a/ga'], 0, 'sc-1'],
      [FrameType.TUNNEL, 1, ['a_ga'], 0, 'sc-1'],
      [FrameType.TUNNEL, 1, ['A/ga'], 0, 'sc-1'],
      [FrameType.TUNNEL, 1, path, 3, 'sc-1'],
      [FrameType.TUNNEL, 1, path, -1, 'sc-1'],
      [FrameType.TUNNEL, 1, path, 0, ''],
      [FrameType.TUNNEL, 1, path, 0, 'x'.repeat(129)],
      [FrameType.TUNNEL, 1, 'a/ga', 0, 'sc-1'],
    ];
    for (const header of bad) assertRejects(packed(header), 'TRELLIS_ERR_BAD_FIELD');
    assertRejects(packed([FrameType.TUNNEL, 1, path, 0]), 'TRELLIS_ERR_BAD_HEADER');
    const [frame] = feed(new FrameDecoder(), packed([FrameType.TUNNEL, 7, path, 2, 'sc-0123456789ab']));
    assert.deepEqual(frame, { type: FrameType.TUNNEL, streamId: 7, path, hop: 2, target: 'sc-0123456789ab' });
  });

  it('checks a TUNNEL_DRAIN: a stream id and a gateway key', () => {
    for (const header of [
      [FrameType.TUNNEL_DRAIN, 0, 'a/ga'],
      [FrameType.TUNNEL_DRAIN, 1, 'sc-0123456789ab'],
      [FrameType.TUNNEL_DRAIN, 1, 'A/ga'],
      [FrameType.TUNNEL_DRAIN, 1, 7],
    ]) assertRejects(packed(header), 'TRELLIS_ERR_BAD_FIELD');
    assertRejects(packed([FrameType.TUNNEL_DRAIN, 1]), 'TRELLIS_ERR_BAD_HEADER');
    const [frame] = feed(new FrameDecoder(), packed([FrameType.TUNNEL_DRAIN, 9, 'b/gb']));
    assert.deepEqual(frame, { type: FrameType.TUNNEL_DRAIN, streamId: 9, gateway: 'b/gb' });
  });

  it('rejects an unknown frame type', () => {
    assertRejects(hex('00 03 92 0b 01'), 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE');
    assertRejects(hex('00 03 92 ff 01'), 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE');
    assertRejects(hex('00 04 92 a1 31 01'), 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE');
    assertRejects(hex('00 0b 92 cb 3f f8 00 00 00 00 00 00 01'), 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE');
  });

  it('rejects a header that is not one msgpack array of the right length', () => {
    assertRejects(hex('00 01 07'), 'TRELLIS_ERR_BAD_HEADER'); // an integer
    assertRejects(hex('00 01 80'), 'TRELLIS_ERR_BAD_HEADER'); // a map
    assertRejects(hex('00 01 90'), 'TRELLIS_ERR_BAD_HEADER'); // an empty array
    assertRejects(hex('00 01 c1'), 'TRELLIS_ERR_BAD_HEADER'); // never-used msgpack byte
    assertRejects(hex('00 02 92 01'), 'TRELLIS_ERR_BAD_HEADER'); // truncated inside the header
    assertRejects(hex('00 02 91 01'), 'TRELLIS_ERR_BAD_HEADER'); // PING without its nonce
    assertRejects(hex('00 04 93 01 05 05'), 'TRELLIS_ERR_BAD_HEADER'); // PING with an extra field
  });

  it('rejects trailing bytes inside the declared header length', () => {
    assertRejects(hex('00 04 92 01 05 00'), 'TRELLIS_ERR_BAD_HEADER');
    // The same, split so that the header is assembled from pieces.
    assert.throws(() => feed(new FrameDecoder(), hex('00 04 92'), hex('01 05'), hex('00')), {
      code: 'TRELLIS_ERR_BAD_HEADER',
    });
  });

  it('rejects fields out of range or of the wrong type', () => {
    const bad: [string, string][] = [
      ['FIN stream id 0', '00 03 92 07 00'],
      ['FIN stream id 2^31', '00 07 92 07 ce 80 00 00 00'],
      ['FIN stream id -1', '00 03 92 07 ff'],
      ['FIN stream id 1.5', '00 0b 92 07 cb 3f f8 00 00 00 00 00 00'],
      ['FIN stream id "1"', '00 04 92 07 a1 31'],
      ['FIN stream id nil', '00 03 92 07 c0'],
      ['WINDOW credit 0', '00 04 93 06 01 00'],
      ['WINDOW credit 2^31', '00 08 93 06 01 ce 80 00 00 00'],
      ['HELLO version 0', '00 05 94 00 00 01 00'],
      ['HELLO version 65536', '00 09 94 00 01 ce 00 01 00 00 00'],
      ['HELLO min above max', '00 05 94 00 02 01 00'],
      ['HELLO window -1', '00 05 94 00 01 01 ff'],
      ['PING nonce 2^32', '00 0b 92 01 cf 00 00 00 01 00 00 00 00'],
      ['PONG nonce -1', '00 03 92 02 ff'],
      ['OPEN empty service', '00 04 93 04 01 a0'],
      ['OPEN upper-case service', '00 06 93 04 01 a2 44 62'],
      ['OPEN service with a leading hyphen', '00 06 93 04 01 a2 2d 61'],
      ['OPEN service with a trailing hyphen', '00 06 93 04 01 a2 61 2d'],
      ['OPEN service not a string', '00 04 93 04 01 01'],
      ['GOAWAY message not a string', '00 04 93 03 00 01'],
      ['RESET code -1', '00 05 94 08 01 ff a0'],
      ['DATA length -1', '00 04 93 05 01 ff'],
      ['DATA length 1.5', '00 0c 93 05 01 cb 3f f8 00 00 00 00 00 00'],
      ['DATA length "5"', '00 05 93 05 01 a1 35'],
    ];
    for (const [what, bytes] of bad) {
      assert.throws(() => feed(new FrameDecoder(), hex(bytes)), { code: 'TRELLIS_ERR_BAD_FIELD' }, what);
    }
    assertRejects(packed([FrameType.OPEN, 1, 'a'.repeat(64)]), 'TRELLIS_ERR_BAD_FIELD');
    assertRejects(packed([FrameType.GOAWAY, 0, 'x'.repeat(513)]), 'TRELLIS_ERR_BAD_FIELD');
    assertRejects(packed([FrameType.RESET, 1, 8, '€'.repeat(171)]), 'TRELLIS_ERR_BAD_FIELD');
  });

  it('accepts fields at their limits and integers in any msgpack encoding', () => {
    const frames = feed(
      new FrameDecoder(),
      packed([FrameType.OPEN, 0x7fffffff, 'a'.repeat(63)]),
      packed([FrameType.RESET, 1, 0xffffffff, '€'.repeat(170)]),
      packed([FrameType.WINDOW, 2, 0x7fffffff]),
      hex('00 0b 92 01 cf 00 00 00 00 00 00 00 05'), // nonce 5 as uint64
      hex('00 0b 92 07 cb 3f f0 00 00 00 00 00 00'), // stream id 1 as float64 1.0
    );
    assert.deepEqual(frames, [
      { type: FrameType.OPEN, streamId: 0x7fffffff, service: 'a'.repeat(63) },
      { type: FrameType.RESET, streamId: 1, code: 0xffffffff, message: '€'.repeat(170) },
      { type: FrameType.WINDOW, streamId: 2, creditBytes: 0x7fffffff },
      { type: FrameType.PING, nonce: 5 },
      { type: FrameType.FIN, streamId: 1 },
    ]);
  });
});

describe('dead frame decoder', () => {
  it('keeps throwing the same error after malformed input', () => {
    const decoder = new FrameDecoder();
    assert.throws(() => feed(decoder, hex('00 03 92 0b 01')), { code: 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE' });
    for (let attempt = 0; attempt < 3; attempt++) {
      assert.throws(() => feed(decoder, hex('00 03 92 01 05')), { code: 'TRELLIS_ERR_UNKNOWN_FRAME_TYPE' });
    }
  });

  it('stops after a frame that arrived before the error, and after a callback that threw', () => {
    const decoder = new FrameDecoder();
    const frames: Frame[] = [];
    assert.throws(
      () => decoder.push(hex('00 03 92 01 05  00 03 92 07 00'), (frame) => frames.push(frame)),
      { code: 'TRELLIS_ERR_BAD_FIELD' },
    );
    assert.deepEqual(frames, [{ type: FrameType.PING, nonce: 5 }]);

    const failing = new FrameDecoder();
    const boom = new Error('callback failed');
    assert.throws(() => failing.push(hex('00 03 92 01 05'), () => { throw boom; }), (error) => error === boom);
    assert.throws(() => feed(failing, hex('00 03 92 01 05')), (error) => error === boom);
  });

  it('refuses limits the wire cannot express', () => {
    assert.throws(() => new FrameDecoder({ maxHeaderBytes: 0 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxHeaderBytes: 65536 }), RangeError);
    assert.throws(() => new FrameDecoder({ maxDataPayloadBytes: -1 }), RangeError);
  });
});
