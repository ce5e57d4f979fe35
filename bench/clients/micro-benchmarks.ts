/**
 * Micro-benchmarks of Trellis's hot paths, in a process of their own so the harness's work does
 * not disturb them: the frame encoder and decoder (large and small DATA frames) and the
 * hash-ring lookup. Prints one JSON line (MicroReport).
 *
 * usage: node micro-benchmarks.js SECONDS_PER_CASE RING_ENDPOINTS
 */
import { FrameDecoder } from '../../proto/decode.js';
import { FrameEncoder } from '../../proto/encode.js';
import { FrameType } from '../../proto/frames.js';
import type { DataFrame } from '../../proto/frames.js';
import { HashRingBalancer } from '../../sidecar/balancer/hash-ring-balancer.js';

/** Operations between two looks at the clock. */
const BATCH = 256;
/** Chunk size fed to the decoder: what one TLS read typically hands over. */
const READ_CHUNK_BYTES = 64 * 1024;
const RING_KEYS = 10_000;
/** Candidates asked per lookup, as the outbound path asks (the pick plus two fallbacks). */
const RING_CANDIDATES = 3;

export interface CodecFigures {
  mbPerSecond: number;
  nsPerFrame: number;
}
export interface MicroReport {
  encodeLarge: CodecFigures;
  decodeLarge: CodecFigures;
  encodeSmall: CodecFigures;
  decodeSmall: CodecFigures;
  ringNsPerLookup: number;
}

const secondsPerCase = Number(process.argv[2]);
const ringEndpoints = Number(process.argv[3]);
if (!(secondsPerCase > 0) || !Number.isInteger(ringEndpoints) || ringEndpoints < 1) {
  process.stderr.write('usage: micro-benchmarks SECONDS_PER_CASE RING_ENDPOINTS\n');
  process.exit(2);
}

/** Runs `operation` in batches for the given time (after a short warm-up); returns ns per operation. */
function timePerOperation(operation: (index: number) => void): number {
  const run = (seconds: number): { operations: number; ns: number } => {
    const start = process.hrtime.bigint();
    const stopAt = performance.now() + seconds * 1000;
    let operations = 0;
    do {
      for (let i = 0; i < BATCH; i++) operation(operations + i);
      operations += BATCH;
    } while (performance.now() < stopAt);
    return { operations, ns: Number(process.hrtime.bigint() - start) };
  };
  run(secondsPerCase / 5);
  const measured = run(secondsPerCase);
  return measured.ns / measured.operations;
}

function dataFrame(payloadBytes: number, streamId: number): DataFrame {
  return { type: FrameType.DATA, streamId, payload: Buffer.alloc(payloadBytes, 0x5a) };
}

function encodeCase(payloadBytes: number): CodecFigures {
  const encoder = new FrameEncoder();
  const frame = dataFrame(payloadBytes, 7);
  const wireBytes = encoder.encode(frame).reduce((sum, part) => sum + part.length, 0);
  let sink = 0;
  const ns = timePerOperation(() => {
    sink += encoder.encode(frame).length;
  });
  if (sink < 0) process.stderr.write('unreachable\n');
  return { nsPerFrame: ns, mbPerSecond: wireBytes / ns / 1e-9 / 1e6 };
}

function decodeCase(payloadBytes: number): CodecFigures {
  const encoder = new FrameEncoder();
  // About 1 MiB of frames, cut into read-sized chunks that ignore frame boundaries.
  const framesPerStream = Math.max(1, Math.floor((1024 * 1024) / (payloadBytes + 8)));
  const wire = Buffer.concat(Array.from({ length: framesPerStream }, (_, i) => encoder.encode(dataFrame(payloadBytes, 2 * i + 1))).flat());
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < wire.length; offset += READ_CHUNK_BYTES) chunks.push(wire.subarray(offset, offset + READ_CHUNK_BYTES));
  let decoder = new FrameDecoder();
  let frames = 0;
  const onFrame = (): void => {
    frames += 1;
  };
  const nsPerChunk = timePerOperation((index) => {
    const position = index % chunks.length;
    // A fresh decoder per pass: every pass starts at a frame boundary.
    if (position === 0) decoder = new FrameDecoder();
    decoder.push(chunks[position]!, onFrame);
  });
  const nsPerByte = nsPerChunk / (wire.length / chunks.length);
  const nsPerFrame = nsPerByte * (wire.length / framesPerStream);
  if (frames === 0) throw new Error('the decoder produced no frames');
  return { nsPerFrame, mbPerSecond: 1 / nsPerByte / 1e-9 / 1e6 };
}

function ringCase(): number {
  const balancer = new HashRingBalancer();
  balancer.update(
    'svc',
    Array.from({ length: ringEndpoints }, (_, i) => ({ sidecarId: `sc-${i.toString(16).padStart(12, '0')}`, address: `10.0.${i >> 8}.${i & 255}:7500`, weight: 1 })),
  );
  // Keys as the outbound path makes them by default: the caller's address and port.
  const keys = Array.from({ length: RING_KEYS }, (_, i) => `127.0.0.1:${30_000 + i}`);
  let picked = 0;
  const ns = timePerOperation((index) => {
    picked += balancer.candidates('svc', keys[index % RING_KEYS]!, RING_CANDIDATES).length;
  });
  if (picked === 0) throw new Error('the ring picked nothing');
  return ns;
}

const report: MicroReport = {
  encodeLarge: encodeCase(16 * 1024),
  decodeLarge: decodeCase(16 * 1024),
  encodeSmall: encodeCase(64),
  decodeSmall: decodeCase(64),
  ringNsPerLookup: ringCase(),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
