/**
 * Limits failed join attempts per source address, so that nobody can guess token secrets or
 * flood the CA with bad requests: a token bucket per address, where each failure takes one
 * token and tokens come back one per refill interval. An address with none left is refused
 * with 429 before its token is even checked, whatever it carries (a valid token included);
 * successful joins take nothing, and refused attempts take nothing either, so a sidecar
 * retrying with backoff gets back in once its bucket refills.
 */
import { ControlErrorCode } from '../proto/control.js';
import { ApiError } from './errors.js';

/** Failed join attempts one address may make in a burst. */
export const JOIN_FAILURE_BURST = 20;
/** One more failure is allowed every this many milliseconds. */
export const JOIN_FAILURE_REFILL_MS = 3_000;
/**
 * Most addresses tracked at once. Beyond it the address that failed longest ago is forgotten,
 * so memory stays bounded under a flood from many addresses.
 */
export const MAX_TRACKED_SOURCES = 10_000;

/** Options of {@link JoinFailureLimiter}. */
export interface JoinFailureLimiterInit {
  /** @default {@link JOIN_FAILURE_BURST} */
  burst?: number;
  /** @default {@link JOIN_FAILURE_REFILL_MS} */
  refillMs?: number;
  /** @default {@link MAX_TRACKED_SOURCES} */
  maxSources?: number;
  /** @default Date.now */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** Failed-join buckets by source address. */
export class JoinFailureLimiter {
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #maxSources: number;
  readonly #now: () => number;
  /** In order of last failure, oldest first (a Map keeps insertion order). */
  readonly #buckets = new Map<string, Bucket>();

  constructor(init: JoinFailureLimiterInit = {}) {
    this.#burst = init.burst ?? JOIN_FAILURE_BURST;
    this.#refillMs = init.refillMs ?? JOIN_FAILURE_REFILL_MS;
    this.#maxSources = init.maxSources ?? MAX_TRACKED_SOURCES;
    this.#now = init.now ?? Date.now;
  }

  /**
   * Refuses `source` when it has no failures left.
   * @throws ApiError `TRELLIS_ERR_RATE_LIMITED` (429).
   */
  check(source: string): void {
    const bucket = this.#refilled(source);
    if (bucket !== undefined && bucket.tokens < 1) {
      const waitS = Math.ceil((this.#refillMs - (this.#now() - bucket.updatedAt)) / 1000);
      throw new ApiError(ControlErrorCode.RATE_LIMITED, `too many failed join attempts from ${source}; try again in ${Math.max(1, waitS)} s`, 429);
    }
  }

  /** Records a failed attempt from `source`. */
  failed(source: string): void {
    const bucket = this.#refilled(source) ?? { tokens: this.#burst, updatedAt: this.#now() };
    bucket.tokens = Math.max(0, bucket.tokens - 1);
    this.#buckets.delete(source);
    this.#buckets.set(source, bucket);
    if (this.#buckets.size > this.#maxSources) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
  }

  /** Addresses with failures not yet forgotten. */
  get trackedSources(): number {
    return this.#buckets.size;
  }

  /** The bucket of `source` topped up for the time passed; undefined (and forgotten) once full. */
  #refilled(source: string): Bucket | undefined {
    const bucket = this.#buckets.get(source);
    if (bucket === undefined) return undefined;
    const now = this.#now();
    const earned = Math.floor((now - bucket.updatedAt) / this.#refillMs);
    if (earned > 0) {
      bucket.tokens += earned;
      bucket.updatedAt += earned * this.#refillMs;
    }
    if (bucket.tokens >= this.#burst) {
      this.#buckets.delete(source);
      return undefined;
    }
    return bucket;
  }
}
