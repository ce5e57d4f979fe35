/**
 * A bounded memory of stream ids that were reset or refused recently, so that frames the peer
 * sent before it learnt of the reset are ignored rather than treated as violations.
 */

/** How many recently reset stream ids a session remembers. */
export const RECENT_RESET_MEMORY = 4096;

/**
 * Remembers the last `capacity` ids added; older ones are forgotten. Memory is fixed: one
 * ring of ids plus a set of the same ids for lookups.
 */
export class RecentStreamIds {
  readonly #ring: Int32Array;
  readonly #members = new Set<number>();
  #next = 0;

  constructor(capacity = RECENT_RESET_MEMORY) {
    this.#ring = new Int32Array(capacity);
  }

  add(streamId: number): void {
    if (this.#members.has(streamId)) return;
    const evicted = this.#ring[this.#next]!;
    // 0 is never a stream id: an empty slot.
    if (evicted !== 0) this.#members.delete(evicted);
    this.#ring[this.#next] = streamId;
    this.#members.add(streamId);
    this.#next = (this.#next + 1) % this.#ring.length;
  }

  has(streamId: number): boolean {
    return this.#members.has(streamId);
  }
}
