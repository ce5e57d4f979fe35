/**
 * A msgpack writer that lets the generator pick every encoding (an integer as uint64, a
 * string as str32, an array declaring more elements than follow), and arbitraries of hostile
 * values: what msgpackr's own packer would never write but a peer may.
 */
import fc from 'fast-check';

/** One msgpack value, with the encoding to write it in. */
export type RawValue =
  | { t: 'uint'; value: bigint; width: 0 | 1 | 2 | 4 | 8 }
  | { t: 'int'; value: bigint; width: 0 | 1 | 2 | 4 | 8 }
  | { t: 'f32' | 'f64'; value: number }
  | { t: 'nil' }
  | { t: 'bool'; value: boolean }
  | { t: 'str' | 'bin'; bytes: Uint8Array; width: 0 | 1 | 2 | 4; declared?: number | null }
  | { t: 'array'; items: RawValue[]; width: 0 | 2 | 4; declared?: number | null }
  | { t: 'map'; entries: [RawValue, RawValue][]; width: 0 | 2 | 4; declared?: number | null }
  | { t: 'ext'; type: number; data: Uint8Array };

/** The bytes of `value`; each part is written as its encoding says, truncated to its width. */
export function packRaw(value: RawValue): Buffer {
  const parts: Buffer[] = [];
  write(value, parts);
  return Buffer.concat(parts);
}

function write(value: RawValue, parts: Buffer[]): void {
  switch (value.t) {
    case 'uint':
    case 'int':
      parts.push(integerBytes(value.t, value.value, value.width));
      return;
    case 'f32': {
      const bytes = Buffer.alloc(5);
      bytes[0] = 0xca;
      bytes.writeFloatBE(value.value, 1);
      parts.push(bytes);
      return;
    }
    case 'f64': {
      const bytes = Buffer.alloc(9);
      bytes[0] = 0xcb;
      bytes.writeDoubleBE(value.value, 1);
      parts.push(bytes);
      return;
    }
    case 'nil':
      parts.push(Buffer.of(0xc0));
      return;
    case 'bool':
      parts.push(Buffer.of(value.value ? 0xc3 : 0xc2));
      return;
    case 'str':
    case 'bin': {
      const count = value.declared ?? value.bytes.length;
      const markers = value.t === 'str' ? [0xa0, 0xd9, 0xda, 0xdb] : [0xc4, 0xc4, 0xc5, 0xc6];
      // bin has no fixed form: width 0 falls back to bin8.
      const width = value.t === 'bin' && value.width === 0 ? 1 : value.width;
      parts.push(lengthPrefix(markers, width, count, 31), Buffer.from(value.bytes));
      return;
    }
    case 'array':
      parts.push(lengthPrefix([0x90, 0, 0xdc, 0xdd], value.width, value.declared ?? value.items.length, 15));
      for (const item of value.items) write(item, parts);
      return;
    case 'map':
      parts.push(lengthPrefix([0x80, 0, 0xde, 0xdf], value.width, value.declared ?? value.entries.length, 15));
      for (const [key, item] of value.entries) {
        write(key, parts);
        write(item, parts);
      }
      return;
    case 'ext': {
      const head = Buffer.alloc(3);
      head[0] = 0xc7;
      head[1] = value.data.length & 0xff;
      head[2] = value.type & 0xff;
      parts.push(head, Buffer.from(value.data.subarray(0, 255)));
      return;
    }
  }
}

/** A fix form (count folded into `markers[0]`) or a 1/2/4-byte count after its marker. */
function lengthPrefix(markers: readonly number[], width: 0 | 1 | 2 | 4, count: number, fixMax: number): Buffer {
  if (width === 0) return Buffer.of(markers[0]! | (Math.min(count, fixMax) & fixMax));
  const marker = markers[width === 1 ? 1 : width === 2 ? 2 : 3]!;
  const bytes = Buffer.alloc(1 + width);
  bytes[0] = marker;
  if (width === 1) bytes[1] = count & 0xff;
  else if (width === 2) bytes.writeUInt16BE(count & 0xffff, 1);
  else bytes.writeUInt32BE(count >>> 0, 1);
  return bytes;
}

function integerBytes(kind: 'uint' | 'int', value: bigint, width: 0 | 1 | 2 | 4 | 8): Buffer {
  if (width === 0) {
    // A fixint: positive 0..127 or negative -32..-1; other values wrap into that range.
    const small = Number(BigInt.asIntN(8, value));
    return Buffer.of(small >= -32 && small <= 127 ? small & 0xff : Number(BigInt.asUintN(7, value)));
  }
  const markers = kind === 'uint' ? { 1: 0xcc, 2: 0xcd, 4: 0xce, 8: 0xcf } : { 1: 0xd0, 2: 0xd1, 4: 0xd2, 8: 0xd3 };
  const bytes = Buffer.alloc(1 + width);
  bytes[0] = markers[width];
  return kind === 'uint' ? writeUnsigned(bytes, value, width) : writeSigned(bytes, value, width);
}

function writeUnsigned(bytes: Buffer, value: bigint, width: 1 | 2 | 4 | 8): Buffer {
  const wrapped = BigInt.asUintN(width * 8, value);
  if (width === 8) bytes.writeBigUInt64BE(wrapped, 1);
  else bytes.writeUIntBE(Number(wrapped), 1, width);
  return bytes;
}

function writeSigned(bytes: Buffer, value: bigint, width: 1 | 2 | 4 | 8): Buffer {
  const wrapped = BigInt.asIntN(width * 8, value);
  if (width === 8) bytes.writeBigInt64BE(wrapped, 1);
  else bytes.writeIntBE(Number(wrapped), 1, width);
  return bytes;
}

// ---- arbitraries ----

/** Integers at the edges of every range a field has: u16, u31, u32, 2^53, u64, negatives, the limits. */
export const EXTREME_INTEGERS: readonly bigint[] = [
  0n, 1n, 4n, 5n, 9n, 10n, 127n, 128n, 255n, 256n, 1023n, 1024n, 1025n, 0xffffn, 0x10000n, 262143n, 262144n, 262145n,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n,
  2n ** 63n, 2n ** 64n - 1n, -1n, -32n, -33n, -(2n ** 31n), -(2n ** 63n),
];

const EXTREME_FLOATS: readonly number[] = [
  0, -0, 0.5, 1, 1.5, 5, 1024, 262144, 262144.5, 2 ** 31 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, 1e308, -1,
  Number.MIN_VALUE, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY,
];

const uintWidth = fc.constantFrom(0 as const, 1 as const, 2 as const, 4 as const, 8 as const);
const lengthWidth = fc.constantFrom(0 as const, 1 as const, 2 as const, 4 as const);
const containerWidth = fc.constantFrom(0 as const, 2 as const, 4 as const);
/** Mostly the truth; sometimes a count that promises more (or fewer) than follow. */
const declared = fc.option(fc.oneof(fc.nat({ max: 40 }), fc.constantFrom(0xffff, 0x7fffffff, 0xffffffff)), { freq: 6 });

/** An integer, from the edges or at random, in an encoding wide enough for it or not. */
export const rawIntegerArbitrary: fc.Arbitrary<RawValue> = fc.oneof(
  fc.record({ t: fc.constant('uint' as const), value: fc.constantFrom(...EXTREME_INTEGERS), width: uintWidth }),
  fc.record({ t: fc.constant('int' as const), value: fc.constantFrom(...EXTREME_INTEGERS), width: uintWidth }),
  fc.record({ t: fc.constant('uint' as const), value: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), width: fc.constant(8 as const) }),
  fc.record({ t: fc.constantFrom('f32' as const, 'f64' as const), value: fc.oneof(fc.constantFrom(...EXTREME_FLOATS), fc.double()) }),
);

const rawString: fc.Arbitrary<RawValue> = fc.record(
  {
    t: fc.constantFrom('str' as const, 'str' as const, 'bin' as const),
    bytes: fc.oneof(
      fc.string({ maxLength: 70 }).map((text) => new Uint8Array(Buffer.from(text, 'utf8'))),
      fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}(\/[a-z0-9-]{1,10})?$/).map((text) => new Uint8Array(Buffer.from(text))),
      fc.uint8Array({ maxLength: 40 }),
      fc.constant(new Uint8Array(600).fill(0x61)),
    ),
    width: lengthWidth,
    declared,
  },
  { requiredKeys: ['t', 'bytes', 'width'] },
);

/** Any msgpack value a header field could hold, nested a few levels. */
export const rawValueArbitrary: fc.Arbitrary<RawValue> = fc.letrec<{ value: RawValue }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    rawIntegerArbitrary,
    rawString,
    fc.constant({ t: 'nil' as const }),
    fc.boolean().map((value) => ({ t: 'bool' as const, value })),
    fc.record({ t: fc.constant('ext' as const), type: fc.integer({ min: 0, max: 255 }), data: fc.uint8Array({ maxLength: 16 }) }),
    fc.record(
      { t: fc.constant('array' as const), items: fc.array(tie('value'), { maxLength: 5 }), width: containerWidth, declared },
      { requiredKeys: ['t', 'items', 'width'] },
    ),
    fc.record(
      { t: fc.constant('map' as const), entries: fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }), width: containerWidth, declared },
      { requiredKeys: ['t', 'entries', 'width'] },
    ),
  ),
})).value;
