/**
 * Target `frame-decoder`: the link frame decoder fed valid frame streams, hostile headers
 * (extreme integers in any msgpack encoding, lengths that lie) and byte-level mutations of
 * both, in random chunk splits, in both payload modes and with the protocol's and small limits.
 *
 * Properties: only a ProtocolError of a decoder code (with the matching wire code), and then
 * the same error again on the next push; bufferedBytes within its bound after every push;
 * every frame yielded is one the encoder would write; and the same frames and error whatever
 * the split (compared with one whole chunk).
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ErrorCode, FrameDecoder, FrameEncoder, FrameType, Limits, ProtocolError } from '../../../proto/index.js';
import type { DecoderLimits, Frame } from '../../../proto/index.js';
import { encodeStream, frameArbitrary } from '../../proto/frame-arbitraries.js';
import {
  applyByteMutations,
  byteMutationArbitrary,
  chunkSplitArbitrary,
  chunkSplitFromJson,
  spliceBytes,
  splitChunks,
  toChunkSplitJson,
} from '../bytes.js';
import type { ChunkSplit } from '../bytes.js';
import { checkTyped, defineTarget, ensure, FuzzFailure, fromBase64, jsonObject, toBase64 } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { packRaw, rawIntegerArbitrary, rawValueArbitrary } from '../msgpack-raw.js';
import type { RawValue } from '../msgpack-raw.js';

export interface FrameDecoderInput {
  bytes: Buffer;
  split: ChunkSplit;
  payloadPieces: boolean;
  /** Decoder limits of 16 header bytes and 64 payload bytes instead of the protocol's. */
  smallLimits: boolean;
}

const PROTOCOL_LIMITS: DecoderLimits = { maxHeaderBytes: Limits.MAX_HEADER_BYTES, maxDataPayloadBytes: Limits.MAX_DATA_PAYLOAD_BYTES };
const SMALL_LIMITS: DecoderLimits = { maxHeaderBytes: 16, maxDataPayloadBytes: 64 };

/** The codes the frame decoder throws, each with the wire code of its GOAWAY. */
const DECODER_WIRE_CODES: ReadonlyMap<string, number> = new Map([
  ['TRELLIS_ERR_HEADER_TOO_LARGE', ErrorCode.FRAME_TOO_LARGE],
  ['TRELLIS_ERR_FRAME_TOO_LARGE', ErrorCode.FRAME_TOO_LARGE],
  ['TRELLIS_ERR_BAD_HEADER', ErrorCode.PROTOCOL_ERROR],
  ['TRELLIS_ERR_UNKNOWN_FRAME_TYPE', ErrorCode.PROTOCOL_ERROR],
  ['TRELLIS_ERR_BAD_FIELD', ErrorCode.PROTOCOL_ERROR],
]);
const CONTRACT: ErrorContract = { errorClass: ProtocolError, codes: new Set(DECODER_WIRE_CODES.keys()) };

// ---- generator ----

const validStream = fc.array(frameArbitrary, { maxLength: 8 }).map((frames) => encodeStream(frames).bytes);

/** A frame type as the first element: usually a known one, in any integer encoding. */
const frameTypeValue: fc.Arbitrary<RawValue> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ t: fc.constant('uint' as const), value: fc.bigInt({ min: 0n, max: 10n }), width: fc.constantFrom(0 as const, 1 as const, 2 as const, 4 as const, 8 as const) }) },
  { weight: 1, arbitrary: rawIntegerArbitrary },
  { weight: 1, arbitrary: rawValueArbitrary },
);

/** Declared header lengths at and around the limits, or the truth nudged by a few bytes. */
const lengthPrefixLie = fc.option(fc.oneof(fc.constantFrom(0, 1, 2, 1023, 1024, 1025, 0x7fff, 0xffff), fc.integer({ min: -3, max: 3 }).map((delta) => ({ delta }))), { freq: 4 });

/** One frame whose header is hand-packed: any arity, any field values, maybe a lying length. */
const hostileFrame = fc
  .record({
    type: frameTypeValue,
    fields: fc.array(fc.oneof(rawIntegerArbitrary, rawValueArbitrary), { maxLength: 5 }),
    arrayWidth: fc.constantFrom(0 as const, 0 as const, 2 as const, 4 as const),
    arrayDeclared: fc.option(fc.oneof(fc.nat({ max: 8 }), fc.constant(0xffffffff)), { freq: 8 }),
    lengthPrefix: lengthPrefixLie,
    payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 300 })),
  })
  .map(({ type, fields, arrayWidth, arrayDeclared, lengthPrefix, payload }) => {
    const header = packRaw({ t: 'array', items: [type, ...fields], width: arrayWidth, ...(arrayDeclared === null ? {} : { declared: arrayDeclared }) });
    const declaredLength = lengthPrefix === null ? header.length : typeof lengthPrefix === 'number' ? lengthPrefix : header.length + lengthPrefix.delta;
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(Math.max(0, Math.min(0xffff, declaredLength)));
    return Buffer.concat([prefix, header, payload]);
  });

/** A DATA header with its payload length in an unusual encoding, and some of the payload. */
const dataFrameWithOddLength = fc
  .record({ streamId: rawIntegerArbitrary, length: rawIntegerArbitrary, payload: fc.uint8Array({ maxLength: 200 }) })
  .map(({ streamId, length, payload }) => {
    const header = packRaw({ t: 'array', items: [{ t: 'uint', value: 5n, width: 0 }, streamId, length], width: 0 });
    const prefix = Buffer.alloc(2);
    prefix.writeUInt16BE(header.length);
    return Buffer.concat([prefix, header, payload]);
  });

const mixedStream = fc
  .array(fc.oneof({ weight: 3, arbitrary: validStream }, { weight: 2, arbitrary: hostileFrame }, { weight: 1, arbitrary: dataFrameWithOddLength }), { minLength: 1, maxLength: 4 })
  .map((parts) => Buffer.concat(parts));

const splicedStreams = fc.tuple(validStream, fc.oneof(validStream, mixedStream), fc.nat(), fc.nat()).map(([a, b, cutA, cutB]) => spliceBytes(a, b, cutA, cutB));

/** How one base stream is varied: mutations, the chunk split, the decoder's options. */
const variant = fc.record({
  mutations: fc.oneof({ weight: 1, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: fc.array(byteMutationArbitrary, { minLength: 1, maxLength: 5 }) }),
  split: chunkSplitArbitrary,
  payloadPieces: fc.boolean(),
  smallLimits: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

/** Variants generated per base stream: generating a valid frame stream costs more than decoding it. */
const VARIANTS_PER_BASE = 8;

export const frameDecoderInputArbitrary: fc.Arbitrary<readonly FrameDecoderInput[]> = fc
  .record({
    base: fc.oneof({ weight: 3, arbitrary: validStream }, { weight: 3, arbitrary: mixedStream }, { weight: 1, arbitrary: splicedStreams }),
    variants: fc.array(variant, { minLength: VARIANTS_PER_BASE, maxLength: VARIANTS_PER_BASE }),
  })
  .map(({ base, variants }) =>
    variants.map(({ mutations, split, payloadPieces, smallLimits }) => ({ bytes: applyByteMutations(base, mutations), split, payloadPieces, smallLimits })),
  );

// ---- property ----

interface Decoded {
  frames: Frame[];
  error: ProtocolError | undefined;
}

function decode(chunks: readonly Buffer[], input: FrameDecoderInput, encoder: FrameEncoder): Decoded {
  const limits = input.smallLimits ? SMALL_LIMITS : PROTOCOL_LIMITS;
  const decoder = new FrameDecoder({ ...limits, payloadPieces: input.payloadPieces });
  // The bound; with pieces nothing of a payload is held, so only a header can be.
  const bound = input.payloadPieces ? limits.maxHeaderBytes : limits.maxHeaderBytes + limits.maxDataPayloadBytes + 2;
  const frames: Frame[] = [];
  const onFrame = (frame: Frame): void => {
    if (frame.type === FrameType.DATA) {
      ensure(frame.payload.length <= limits.maxDataPayloadBytes, () => `DATA payload of ${frame.payload.length} bytes over the limit`);
    }
    try {
      encoder.encodeHeader(frame);
    } catch (error) {
      throw new FuzzFailure('property', `decoded a frame the encoder refuses: ${describeFrame(frame)}`, { cause: error });
    }
    frames.push(frame);
  };
  for (const chunk of chunks) {
    try {
      decoder.push(chunk, onFrame);
    } catch (error) {
      checkTyped(CONTRACT, 'FrameDecoder.push', error);
      const protocolError = error as ProtocolError;
      ensure(protocolError.wireCode === DECODER_WIRE_CODES.get(protocolError.code), () => `${protocolError.code} carries wire code ${protocolError.wireCode}`);
      let again: unknown;
      try {
        decoder.push(chunk, () => undefined);
      } catch (next) {
        again = next;
      }
      ensure(again === error, () => 'a dead decoder did not throw its error again');
      return { frames, error: protocolError };
    }
    const buffered = decoder.bufferedBytes;
    if (!(buffered >= 0 && buffered <= bound)) throw new FuzzFailure('unbounded-buffer', `bufferedBytes ${buffered} > ${bound}`);
  }
  return { frames, error: undefined };
}

/** Runs of DATA of one stream joined: how a byte-stream consumer sees pieces. */
function joinData(frames: readonly Frame[]): Frame[] {
  const joined: Frame[] = [];
  for (const frame of frames) {
    const last = joined.at(-1);
    if (frame.type === FrameType.DATA && last?.type === FrameType.DATA && last.streamId === frame.streamId) {
      joined[joined.length - 1] = { ...last, payload: Buffer.concat([last.payload, frame.payload]) };
    } else joined.push(frame);
  }
  return joined;
}

function sameFrame(a: Frame, b: Frame): boolean {
  if (a.type === FrameType.DATA || b.type === FrameType.DATA) {
    return a.type === FrameType.DATA && b.type === FrameType.DATA && a.streamId === b.streamId && a.payload.equals(b.payload);
  }
  return isDeepStrictEqual(a, b);
}

function describeFrame(frame: Frame): string {
  return frame.type === FrameType.DATA ? `DATA stream ${frame.streamId}, ${frame.payload.length} bytes` : JSON.stringify(frame);
}

export function checkFrameDecoder(input: FrameDecoderInput): void {
  const encoder = new FrameEncoder();
  const whole = decode([input.bytes], input, encoder);
  const split = decode(splitChunks(input.bytes, input.split), input, encoder);
  ensure(whole.error?.code === split.error?.code, () => `one chunk ends with ${whole.error?.code ?? 'no error'}, the split with ${split.error?.code ?? 'no error'}`);
  const [a, b] = input.payloadPieces ? [joinData(whole.frames), joinData(split.frames)] : [whole.frames, split.frames];
  ensure(a.length === b.length && a.every((frame, index) => sameFrame(frame, b[index]!)), () => `one chunk yields ${a.length} frames, the split ${b.length} (or different ones)`);
}

// ---- corpus ----

function frameBytes(header: RawValue, payload: Uint8Array = new Uint8Array(0), declaredLength?: number): Buffer {
  return prefixed(packRaw(header), payload, declaredLength);
}

function prefixed(header: Buffer, payload: Uint8Array = new Uint8Array(0), declaredLength = header.length): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(declaredLength);
  return Buffer.concat([prefix, header, payload]);
}

const u = (value: bigint | number, width: 0 | 1 | 2 | 4 | 8 = 0): RawValue => ({ t: 'uint', value: BigInt(value), width });
const s = (text: string, width: 0 | 1 | 2 | 4 = 1): RawValue => ({ t: 'str', bytes: new Uint8Array(Buffer.from(text)), width });
const arr = (items: RawValue[], width: 0 | 2 | 4 = 0, declared?: number): RawValue => ({ t: 'array', items, width, ...(declared === undefined ? {} : { declared }) });
const whole: ChunkSplit = { cuts: [], byteByByte: false };
const seed = (name: string, note: string, bytes: Buffer, extra: Partial<FrameDecoderInput> = {}): SeedInput<FrameDecoderInput> => ({
  name,
  note,
  input: { bytes, split: whole, payloadPieces: false, smallLimits: false, ...extra },
});

function seeds(): SeedInput<FrameDecoderInput>[] {
  const valid = encodeStream([
    { type: FrameType.HELLO, minVersion: 1, maxVersion: 2, initialWindowBytes: 65536 },
    { type: FrameType.OPEN, streamId: 1, service: 'api' },
    { type: FrameType.DATA, streamId: 1, payload: Buffer.from('hello') },
    { type: FrameType.FIN, streamId: 1 },
  ]).bytes;
  const fourHops = ['a/g1', 'b/g2', 'c/g3', 'd/g4'];
  // A GOAWAY whose header is exactly 1024 bytes: the limit is inclusive, the message rule refuses it.
  const goaway1024 = frameBytes(arr([u(3), u(0), s('x'.repeat(1024 - 5), 2)]));
  return [
    seed('header-length-0', 'headerLength 0: TRELLIS_ERR_BAD_HEADER before anything else', Buffer.from([0, 0])),
    seed('header-length-1024', 'a 1024-byte header (the limit, accepted as a length), whose message is too long: BAD_FIELD', goaway1024),
    seed('header-length-1025', 'headerLength 1025 and nothing else: HEADER_TOO_LARGE as soon as the two bytes are read', Buffer.from([0x04, 0x01])),
    seed('header-length-65535-split', 'headerLength 0xffff, the u16 split over two chunks', Buffer.from([0xff, 0xff, 0x91]), { split: { cuts: [1], byteByByte: false } }),
    seed('data-declares-2-pow-32', 'DATA declaring 2^32 payload bytes (uint64): FRAME_TOO_LARGE, nothing allocated', frameBytes(arr([u(5), u(1), u(2n ** 32n, 8)]))),
    seed('data-declares-u64-max', 'DATA declaring 2^64-1 payload bytes: int64AsType number gives 1.8e19, refused', frameBytes(arr([u(5), u(1), u(2n ** 64n - 1n, 8)]))),
    seed('data-declares-limit-plus-one', 'DATA declaring 262145 bytes with 10 following: FRAME_TOO_LARGE', frameBytes(arr([u(5), u(1), u(262145, 4)]), new Uint8Array(10))),
    seed('data-declares-limit-truncated', 'DATA declaring exactly 262144 bytes, only 100 sent, byte by byte: buffering bounded', frameBytes(arr([u(5), u(1), u(262144, 4)]), new Uint8Array(100)), { split: { cuts: [], byteByByte: true } }),
    seed('data-float-length', 'DATA payload length as float64 3.0 (integral float: accepted) then 3.5 (refused)', Buffer.concat([frameBytes(arr([u(5), u(1), { t: 'f64', value: 3 }]), Buffer.from('abc')), frameBytes(arr([u(5), u(1), { t: 'f64', value: 3.5 }]))])),
    seed('data-negative-zero-length', 'DATA payload length -0.0 as float64', frameBytes(arr([u(5), u(1), { t: 'f64', value: -0 }]))),
    seed('tunnel-5-hops', 'TUNNEL with 5 gateways in its path (MAX_TUNNEL_HOPS is 4): BAD_FIELD', frameBytes(arr([u(9), u(1), arr([...fourHops, 'e/g5'].map((key) => s(key, 0))), u(0), s('sc-1', 0)]))),
    seed('tunnel-4-hops', 'TUNNEL with 4 gateways and hop 4 (the destination): valid', frameBytes(arr([u(9), u(1), arr(fourHops.map((key) => s(key, 0))), u(4), s('sc-1', 0)]))),
    seed('tunnel-repeated-gateway', 'TUNNEL whose path crosses a gateway twice: BAD_FIELD', frameBytes(arr([u(9), u(1), arr(['a/g1', 'b/g2', 'a/g1'].map((key) => s(key, 0))), u(0), s('sc-1', 0)]))),
    seed('nested-msgpack', 'PING whose nonce is 1000 nested one-element arrays, a 1003-byte header: BAD_FIELD', prefixed(Buffer.concat([Buffer.from([0x92, 0x01]), Buffer.alloc(1000, 0x91), Buffer.from([0xc0])]))),
    seed('array32-declares-4g', 'a header that is array32 declaring 2^32-1 elements: BAD_HEADER, nothing allocated', frameBytes(arr([u(1), u(0)], 4, 0xffffffff))),
    seed('str32-declares-4g', 'GOAWAY whose message is str32 declaring 2^32-1 bytes: BAD_HEADER', frameBytes(arr([u(3), u(0), { t: 'str', bytes: new Uint8Array(4), width: 4, declared: 0xffffffff }]))),
    seed('stream-id-u64-max', 'WINDOW on stream 2^64-1 (uint64): BAD_FIELD', frameBytes(arr([u(6), u(2n ** 64n - 1n, 8), u(1)]))),
    seed('stream-id-2-pow-31', 'FIN on stream 2^31 (MAX_STREAM_ID + 1) as uint32: BAD_FIELD', frameBytes(arr([u(7), u(2n ** 31n, 4)]))),
    seed('type-as-uint64', 'PING with its type 1 as uint64 and nonce 2^32-1 as uint32: valid', frameBytes(arr([u(1, 8), u(0xffffffff, 4)]))),
    seed('type-11', 'frame type 11: UNKNOWN_FRAME_TYPE', frameBytes(arr([u(11), u(0)]))),
    seed('tunnel-drain', 'TUNNEL_DRAIN on stream 3 naming gateway a/g1: valid', frameBytes(arr([u(10), u(3), s('a/g1', 0)]))),
    seed('tunnel-drain-bad-gateway', 'TUNNEL_DRAIN naming a sidecar id, not a gateway key: BAD_FIELD', frameBytes(arr([u(10), u(3), s('sc-1', 0)]))),
    seed('header-trailing-byte', 'a PING header one byte longer than its msgpack value: BAD_HEADER', frameBytes(arr([u(1), u(7)]), new Uint8Array([0xc0]), 4)),
    seed('header-ext-type', 'a header that is an ext value, not an array', frameBytes({ t: 'ext', type: 0x72, data: new Uint8Array([0x92, 1, 2]) })),
    seed('valid-byte-by-byte', 'HELLO, OPEN, DATA, FIN fed one byte at a time, payload in pieces', valid, { split: { cuts: [], byteByByte: true }, payloadPieces: true }),
    seed('small-limits-17-byte-header', 'small limits (16 header bytes): a valid OPEN of a long service name is HEADER_TOO_LARGE', encodeStream([{ type: FrameType.OPEN, streamId: 1, service: 'a-rather-long-service' }]).bytes, { smallLimits: true }),
  ];
}

export const frameDecoderTarget = defineTarget<FrameDecoderInput>({
  name: 'frame-decoder',
  summary: 'FrameDecoder.push over mutated frame streams in random chunk splits',
  arbitrary: frameDecoderInputArbitrary,
  check: checkFrameDecoder,
  toJson: (input) => ({ bytes: toBase64(input.bytes), ...toChunkSplitJson(input.split), payloadPieces: input.payloadPieces, smallLimits: input.smallLimits }),
  fromJson: (json) => {
    const fields = jsonObject(json, 'frame-decoder input');
    return { bytes: fromBase64(fields.bytes, 'bytes'), split: chunkSplitFromJson(fields), payloadPieces: fields.payloadPieces === true, smallLimits: fields.smallLimits === true };
  },
  seeds,
});
