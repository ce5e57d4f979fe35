import { ErrorCode } from '../../proto/errors.js';
import type { MuxStream } from '../mux/index.js';

/**
 * Joins two tunnel segments at a gateway, byte for byte, without copying: DATA from one is
 * written to the other, and credit goes back on one only as the other takes the bytes, so a
 * hop holds at most a window per direction. FIN crosses as FIN; a reset of either segment
 * (by its peer, or because its link died) resets the other with the same code, so both ends
 * of the tunnel learn of it.
 */
export function spliceStreams(a: MuxStream, b: MuxStream, heldFromA?: HeldBytes): void {
  pipeOneWay(a, b, heldFromA);
  pipeOneWay(b, a, undefined);
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

function pipeOneWay(from: MuxStream, to: MuxStream, held: HeldBytes | undefined): void {
  let unconsumedBytes = 0;
  const early = held?.release();
  for (const payload of early?.chunks ?? []) {
    if (to.write(payload)) from.consumed(payload.length);
    else unconsumedBytes += payload.length;
  }
  if (early?.ended === true) to.end();
  from.on('data', (payload: Buffer) => {
    if (to.state === 'closed' || to.state === 'localClosed') return;
    if (to.write(payload)) from.consumed(payload.length);
    else unconsumedBytes += payload.length;
  });
  to.on('drain', () => {
    if (unconsumedBytes === 0) return;
    const bytes = unconsumedBytes;
    unconsumedBytes = 0;
    from.consumed(bytes);
  });
  from.on('end', () => {
    if (to.state === 'open' || to.state === 'remoteClosed') to.end();
  });
  from.on('reset', (code: number, message: string) => {
    if (to.state !== 'closed') to.reset(code === ErrorCode.NONE ? ErrorCode.STREAM_ABORTED : code, message);
  });
}
