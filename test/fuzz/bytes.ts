/**
 * Byte-level mutations of an input stream (what a dumb fuzzer does) and the random chunk
 * splits a socket would deliver it in. Positions are any naturals, taken modulo the length
 * when applied, so that every mutation applies to any input and shrinks toward the start.
 */
import fc from 'fast-check';

export type ByteMutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'duplicate'; at: number; length: number; to: number }
  /** Overwrites 2 or 4 bytes with a big-endian integer: lengths that lie. */
  | { kind: 'int'; at: number; width: 2 | 4; value: number };

/**
 * Bytes with a meaning somewhere: 0, 0xff, sign edges, and every msgpack marker family
 * (fixmap, fixarray, fixstr, nil, never-used 0xc1, bin, ext, float, uint/int, str, array, map).
 */
export const INTERESTING_BYTES: readonly number[] = [
  0x00, 0x01, 0x05, 0x0a, 0x0d, 0x20, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5,
  0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd8, 0xd9, 0xda, 0xdb,
  0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff,
];

/** Integers a length or count field should be tested with. */
export const INTERESTING_LENGTHS: readonly number[] = [
  0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 1023, 1024, 1025, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000, 262143, 262144,
  262145, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

const position = fc.nat({ max: 0xffff });
const byte = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(...INTERESTING_BYTES));

export const byteMutationArbitrary: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: position, byte }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 8 }), byte.map((b) => Uint8Array.of(b))) }),
  fc.record({ kind: fc.constant('delete' as const), at: position, length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('duplicate' as const), at: position, length: fc.integer({ min: 1, max: 64 }), to: position }),
  fc.record({
    kind: fc.constant('int' as const),
    at: position,
    width: fc.constantFrom(2 as const, 4 as const),
    value: fc.oneof(fc.constantFrom(...INTERESTING_LENGTHS), fc.nat()),
  }),
);

/** A copy of `input` with `mutations` applied in order. */
export function applyByteMutations(input: Uint8Array, mutations: readonly ByteMutation[]): Buffer {
  let bytes: Buffer = Buffer.from(input);
  for (const mutation of mutations) bytes = applyOne(bytes, mutation);
  return bytes;
}

function applyOne(bytes: Buffer, mutation: ByteMutation): Buffer {
  const length = bytes.length;
  const at = length === 0 ? 0 : mutation.at % length;
  switch (mutation.kind) {
    case 'flip':
      if (length > 0) bytes[at] = bytes[at]! ^ (1 << mutation.bit);
      return bytes;
    case 'set':
      if (length > 0) bytes[at] = mutation.byte;
      return bytes;
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.length)]);
    case 'truncate':
      return bytes.subarray(0, at);
    case 'duplicate': {
      const piece = bytes.subarray(at, at + mutation.length);
      const to = length === 0 ? 0 : mutation.to % (length + 1);
      return Buffer.concat([bytes.subarray(0, to), piece, bytes.subarray(to)]);
    }
    case 'int': {
      if (length < mutation.width) return bytes;
      const start = Math.min(at, length - mutation.width);
      if (mutation.width === 2) bytes.writeUInt16BE(mutation.value & 0xffff, start);
      else bytes.writeUInt32BE(mutation.value >>> 0, start);
      return bytes;
    }
  }
}

/** The head of `a` up to `cutA` followed by the tail of `b` from `cutB` (both modulo length). */
export function spliceBytes(a: Uint8Array, b: Uint8Array, cutA: number, cutB: number): Buffer {
  const headEnd = a.length === 0 ? 0 : cutA % (a.length + 1);
  const tailStart = b.length === 0 ? 0 : cutB % (b.length + 1);
  return Buffer.concat([a.subarray(0, headEnd), b.subarray(tailStart)]);
}

/**
 * How a byte stream is cut into chunks: at points (modulo the length), or one byte at a time
 * when `byteByByte` is set, the worst case for state carried between chunks.
 */
export interface ChunkSplit {
  cuts: number[];
  byteByByte: boolean;
}

export const chunkSplitArbitrary: fc.Arbitrary<ChunkSplit> = fc.record({
  cuts: fc.array(fc.nat(), { maxLength: 12 }),
  byteByByte: fc.boolean().chain((b) => (b ? fc.boolean().map((c) => b && c) : fc.constant(false))),
});

/** `bytes` as the chunks of `split`, each a view. */
export function splitChunks(bytes: Buffer, split: ChunkSplit): Buffer[] {
  if (split.byteByByte) {
    const chunks: Buffer[] = [];
    for (let index = 0; index < bytes.length; index += 1) chunks.push(bytes.subarray(index, index + 1));
    return chunks;
  }
  const points = [...new Set(split.cuts.map((cut) => (bytes.length === 0 ? 0 : cut % bytes.length)))].filter((point) => point > 0).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const end of [...points, bytes.length]) {
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

export function toChunkSplitJson(split: ChunkSplit): { cuts: number[]; byteByByte: boolean } {
  return { cuts: [...split.cuts], byteByByte: split.byteByByte };
}

export function chunkSplitFromJson(json: Record<string, unknown>): ChunkSplit {
  const cuts = json.cuts ?? [];
  if (!Array.isArray(cuts) || !cuts.every((cut) => Number.isSafeInteger(cut) && (cut as number) >= 0)) throw new Error('cuts is not an array of naturals');
  return { cuts: cuts as number[], byteByByte: json.byteByByte === true };
}
