import { ErrorCode } from '../../proto/errors.js';
import type { MuxStream } from '../mux/index.js';

/**
 * Joins two tunnel segments at a gateway, byte for byte, without copying: DATA from one is
 * written to the other, and credit goes back on one only as the other takes the bytes, so a
 * hop holds at most a window per direction. FIN crosses as FIN; a reset of either segment
 * (by its peer, or because its link died) resets the other with the same code, so both ends
 * of the tunnel learn of it. A TUNNEL_DRAIN from a gateway further along crosses too, so that
 * it reaches the end sidecar.
 */
export function spliceStreams(a: MuxStream, b: MuxStream, heldFromA?: HeldBytes): void {
  pipeOneWay(a, b, heldFromA);
  pipeOneWay(b, a, undefined);
  a.on('tunnelDrain', (gateway: string) => b.sendTunnelDrain(gateway));
  b.on('tunnelDrain', (gateway: string) => a.sendTunnelDrain(gateway));
}

/** What a segment delivered before the next one existed: kept (credit not yet returned) for the splice. */
export interface HeldBytes {
  /** Stops holding; returns what arrived meanwhile. */
  release(): { chunks: Buffer[]; ended: boolean };
}

/**
 * Holds what `stream` delivers until {@link HeldBytes.release}: a tunnel's first bytes (the
 * TLS ClientHello) arrive right behind its TUNNEL, before the gateway has opened the next hop.
 * The peer's window bounds how much can arrive, since no credit is returned meanwhile.
 */
export function holdBytes(stream: MuxStream): HeldBytes {
  const chunks: Buffer[] = [];
  let ended = false;
  const onData = (payload: Buffer): void => void chunks.push(payload);
  const onEnd = (): void => void (ended = true);
  stream.on('data', onData);
  stream.on('end', onEnd);
  return {
    release() {
      stream.off('data', onData);
      stream.off('end', onEnd);
      return { chunks, ended };
    },
  };
}

/**
 * One direction of a splice. The pieces that arrive in one turn of the event loop are written
 * on together once its I/O is done (setImmediate), so they leave in one DATA frame instead of
 * one frame each: a TLS socket hands out what it read in pieces of at most 16 KiB, each in a
 * callback of its own (so a tick is too short to gather them). Fewer headers to encode here
 * and to decode at the next hop.
 */
function pipeOneWay(from: MuxStream, to: MuxStream, held: HeldBytes | undefined): void {
  let unconsumedBytes = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const send = (pieces: Buffer[], bytes: number): void => {
    if (pieces.length === 0 || to.state === 'closed' || to.state === 'localClosed') return;
    if (to.writev(pieces)) from.consumed(bytes);
    else unconsumedBytes += bytes;
  };
  const sendBatch = (): void => {
    const pieces = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    send(pieces, bytes);
  };
  const early = held?.release();
  if (early !== undefined) send(early.chunks, early.chunks.reduce((sum, chunk) => sum + chunk.length, 0));
  if (early?.ended === true) to.end();
  from.on('data', (payload: Buffer) => {
    if (batch.length === 0) setImmediate(sendBatch);
    batch.push(payload);
    batchBytes += payload.length;
  });
  to.on('drain', () => {
    if (unconsumedBytes === 0) return;
    const bytes = unconsumedBytes;
    unconsumedBytes = 0;
    from.consumed(bytes);
  });
  from.on('end', () => {
    // The bytes of this tick go before the FIN.
    sendBatch();
    if (to.state === 'open' || to.state === 'remoteClosed') to.end();
  });
  from.on('reset', (code: number, message: string) => {
    batch = [];
    batchBytes = 0;
    if (to.state !== 'closed') to.reset(code === ErrorCode.NONE ? ErrorCode.STREAM_ABORTED : code, message);
  });
}
