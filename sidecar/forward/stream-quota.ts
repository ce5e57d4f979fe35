/**
 * Inbound stream quotas across links: a link caps its own streams (`maxConcurrentStreams`), but
 * one identity may hold many links, and every inbound stream costs a descriptor (the app
 * connection). These caps hold per peer identity, across all its links, and per process.
 */

import { ValidationError } from '../../proto/errors.js';

/** Why a stream quota refused a stream (RESET RESOURCE_EXHAUSTED). */
export type StreamRefusalReason =
  /** {@link StreamQuotaLimits.maxStreams} inbound streams were open already. */
  | 'too-many-streams'
  /** {@link StreamQuotaLimits.maxStreamsPerPeer} inbound streams of this peer identity were open already. */
  | 'too-many-streams-from-peer';

export interface StreamQuotaLimits {
  /** Inbound streams open at once, from every peer. @default 16_000 */
  maxStreams?: number;
  /** Inbound streams of one peer identity open at once, across all its links. @default 10_000 */
  maxStreamsPerPeer?: number;
}

export const DEFAULT_MAX_INBOUND_STREAMS = 16_000;
export const DEFAULT_MAX_INBOUND_STREAMS_PER_PEER = 10_000;

/** What {@link StreamQuota.acquire} answers: a slot and the function that gives it back, or why not. */
export type StreamGrant = { granted: true; release: () => void } | { granted: false; reason: StreamRefusalReason };

/** Counts open inbound streams by peer identity and in total, within {@link StreamQuotaLimits}. */
export class StreamQuota {
  readonly maxStreams: number;
  readonly maxStreamsPerPeer: number;
  readonly #byPeer = new Map<string, number>();
  #total = 0;

  /** @throws ValidationError `TRELLIS_ERR_INVALID` for a limit that is not a whole number >= 1. */
  constructor(limits: StreamQuotaLimits = {}) {
    this.maxStreams = limit('maxStreams', limits.maxStreams, DEFAULT_MAX_INBOUND_STREAMS);
    this.maxStreamsPerPeer = limit('maxStreamsPerPeer', limits.maxStreamsPerPeer, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER);
  }

  /** Streams open now: in total, and of `peer` when given. */
  active(peer?: string): number {
    return peer === undefined ? this.#total : (this.#byPeer.get(peer) ?? 0);
  }

  /** Takes a slot for a stream of `peer` (a key per identity, as `peerKeyOf`); `release` is idempotent. */
  acquire(peer: string): StreamGrant {
    const held = this.#byPeer.get(peer) ?? 0;
    if (held >= this.maxStreamsPerPeer) return { granted: false, reason: 'too-many-streams-from-peer' };
    if (this.#total >= this.maxStreams) return { granted: false, reason: 'too-many-streams' };
    this.#byPeer.set(peer, held + 1);
    this.#total += 1;
    let released = false;
    return {
      granted: true,
      release: () => {
        if (released) return;
        released = true;
        this.#total -= 1;
        const left = (this.#byPeer.get(peer) ?? 1) - 1;
        if (left > 0) this.#byPeer.set(peer, left);
        else this.#byPeer.delete(peer);
      },
    };
  }
}

function limit(name: string, value: number | undefined, fallback: number): number {
  const resolved = value ?? fallback;
  if (!Number.isInteger(resolved) || resolved < 1) throw new ValidationError(`${name} must be a whole number >= 1, got ${resolved}`);
  return resolved;
}
