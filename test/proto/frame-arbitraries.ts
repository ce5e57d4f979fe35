/**
 * fast-check arbitraries of valid link frames, one per frame type, and byte-stream helpers
 * shared by the codec tests.
 */

import fc from 'fast-check';
import { FrameDecoder, FrameEncoder, FrameType, Limits } from '../../proto/index.js';
import type { Frame } from '../../proto/index.js';

const streamId = fc.integer({ min: 1, max: Limits.MAX_STREAM_ID });
const uint32 = fc.integer({ min: 0, max: 0xffffffff });
const version = fc.integer({ min: 1, max: 0xffff });
// Up to 128 code points of up to 4 UTF-8 bytes each, or up to 512 ASCII characters: both
// reach MAX_MESSAGE_BYTES without crossing it.
const message = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 128 }),
  fc.string({ maxLength: Limits.MAX_MESSAGE_BYTES }),
);
const service = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const sidecarId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/);
const payload = fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes));

// Decoded frames are ordinary objects; generated ones must be too for deepEqual to match.
const plain = { noNullPrototype: true } as const;

/** One arbitrary per frame type, keyed by the type's name. */
export const frameArbitraries: Record<keyof typeof FrameType, fc.Arbitrary<Frame>> = {
  HELLO: fc
    .tuple(version, version, fc.integer({ min: 0, max: Limits.MAX_WINDOW_BYTES }))
    .map(([a, b, initialWindowBytes]) => ({
      type: FrameType.HELLO,
      minVersion: Math.min(a, b),
      maxVersion: Math.max(a, b),
      initialWindowBytes,
    })),
  PING: uint32.map((nonce) => ({ type: FrameType.PING, nonce })),
  PONG: uint32.map((nonce) => ({ type: FrameType.PONG, nonce })),
  GOAWAY: fc.record({ type: fc.constant(FrameType.GOAWAY), code: uint32, message }, plain),
  OPEN: fc.record({ type: fc.constant(FrameType.OPEN), streamId, service }, plain),
  DATA: fc.record({ type: fc.constant(FrameType.DATA), streamId, payload }, plain),
  WINDOW: fc.record(
    { type: fc.constant(FrameType.WINDOW), streamId, creditBytes: fc.integer({ min: 1, max: Limits.MAX_WINDOW_BYTES }) },
    plain,
  ),
  FIN: fc.record({ type: fc.constant(FrameType.FIN), streamId }, plain),
  RESET: fc.record({ type: fc.constant(FrameType.RESET), streamId, code: uint32, message }, plain),
  TUNNEL: fc
    .tuple(streamId, fc.uniqueArray(fc.tuple(service, service).map(([zone, name]) => `${zone}/${name}`), { minLength: 1, maxLength: Limits.MAX_TUNNEL_HOPS }), fc.nat(), sidecarId)
    .map(([id, path, hop, target]) => ({ type: FrameType.TUNNEL, streamId: id, path, hop: hop % (path.length + 1), target })),
  TUNNEL_DRAIN: fc
    .tuple(streamId, service, service)
    .map(([id, zone, name]) => ({ type: FrameType.TUNNEL_DRAIN, streamId: id, gateway: `${zone}/${name}` })),
};

/** Any valid frame. */
export const frameArbitrary: fc.Arbitrary<Frame> = fc.oneof(...Object.values(frameArbitraries));

/** The bytes of `frames` on the wire, and where each frame starts and ends in them. */
export function encodeStream(frames: readonly Frame[]): { bytes: Buffer; spans: { start: number; end: number }[] } {
  const encoder = new FrameEncoder();
  const parts: Buffer[] = [];
  const spans: { start: number; end: number }[] = [];
  let length = 0;
  for (const frame of frames) {
    const start = length;
    for (const part of encoder.encode(frame)) {
      parts.push(part);
      length += part.length;
    }
    spans.push({ start, end: length });
  }
  return { bytes: Buffer.concat(parts, length), spans };
}

/**
 * `bytes` cut at `cuts` (any numbers; taken modulo the length), each piece in its own
 * ArrayBuffer so that a view of a piece can be told from a copy.
 */
export function splitBytes(bytes: Buffer, cuts: readonly number[]): { piece: Buffer; start: number }[] {
  const points = [...new Set(cuts.map((cut) => (bytes.length === 0 ? 0 : cut % bytes.length)))]
    .filter((point) => point > 0)
    .sort((a, b) => a - b);
  const pieces: { piece: Buffer; start: number }[] = [];
  let start = 0;
  for (const end of [...points, bytes.length]) {
    pieces.push({ piece: ownedCopy(bytes.subarray(start, end)), start });
    start = end;
  }
  return pieces;
}

/** A copy of `bytes` that owns its whole ArrayBuffer. */
export function ownedCopy(bytes: Uint8Array): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  copy.set(bytes);
  return copy;
}

/** Every frame a fresh decoder yields from `chunks`. */
export function decodeChunks(chunks: readonly Buffer[], decoder = new FrameDecoder()): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) decoder.push(chunk, (frame) => frames.push(frame));
  return frames;
}

/** Bytes from a hex string; spaces are ignored. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ''), 'hex');
}
