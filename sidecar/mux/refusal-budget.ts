/**
 * How many of the peer's streams a link refuses before it stops reading for a while.
 *
 * Refusing an OPEN costs this end a stream, a RESET and a counter (~15 µs) for 10 bytes the
 * peer sent, so a peer that opens far beyond its quota could otherwise take the event loop
 * from every other link (an OPEN flood, HTTP/2's "rapid reset"). A token bucket: `burst`
 * refusals at once, `perSecond` on average; beyond that the link's socket is paused until the
 * debt is paid back, so TCP slows the peer down. Nothing is dropped: its frames wait in the
 * kernel, and streams already open on the link carry on once reading resumes.
 */

export interface RefusalBudgetOptions {
  /** Refusals taken at once before any pause. @default DEFAULT_REFUSAL_BURST */
  burst?: number;
  /** Refusals per second on average. @default DEFAULT_REFUSALS_PER_SECOND */
  perSecond?: number;
}

export const DEFAULT_REFUSAL_BURST = 5000;
export const DEFAULT_REFUSALS_PER_SECOND = 5000;
/**
 * The longest single pause: well inside every keepalive timeout (3 s and more), so that the
 * PONGs queued behind a paused link's refusals still arrive in time.
 */
export const MAX_PAUSE_MS = 1000;

export class RefusalBudget {
  readonly #burst: number;
  readonly #perSecond: number;
  readonly #now: () => number;
  #tokens: number;
  #updatedAt: number;

  constructor(options: RefusalBudgetOptions = {}, now: () => number = () => performance.now()) {
    this.#burst = options.burst ?? DEFAULT_REFUSAL_BURST;
    this.#perSecond = options.perSecond ?? DEFAULT_REFUSALS_PER_SECOND;
    this.#now = now;
    this.#tokens = this.#burst;
    this.#updatedAt = now();
  }

  /** Spends one refusal; the budget may go into debt (a chunk's frames are handled whole). */
  spend(): void {
    this.#refill();
    this.#tokens -= 1;
  }

  /** How long to stop reading for the debt to be paid back: 0 while within budget. */
  pauseMs(): number {
    this.#refill();
    if (this.#tokens >= 0) return 0;
    return Math.min(MAX_PAUSE_MS, Math.ceil((-this.#tokens * 1000) / this.#perSecond));
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updatedAt) * this.#perSecond) / 1000);
    this.#updatedAt = now;
  }
}
