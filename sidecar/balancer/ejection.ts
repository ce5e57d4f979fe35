/** When an endpoint that keeps failing is taken out of rotation, and for how long. */
export interface EjectionOptions {
  /** Consecutive failures (dial failures, app unreachable) that eject an endpoint. @default 3 */
  consecutiveFailures?: number;
  /** The first ejection's length; each ejection in a row doubles it. @default 1000 */
  baseBackoffMs?: number;
  /** The longest ejection. @default 30_000 */
  maxBackoffMs?: number;
}

export const DEFAULT_EJECTION: Required<EjectionOptions> = { consecutiveFailures: 3, baseBackoffMs: 1000, maxBackoffMs: 30_000 };

/**
 * One endpoint's failure record (passive outlier detection).
 *
 * An endpoint is ejected once its failure streak reaches the threshold. When the back-off ends
 * it is back in rotation on trial: its streak is still at the threshold, so one more failure
 * ejects it again, for twice as long (capped); one success clears the streak and, outside an
 * ejection, the back-off too.
 */
export class EndpointFailures {
  #failureStreak = 0;
  /** Ejections in a row without a success in between: the exponent of the back-off. */
  #ejectionsInRow = 0;
  #ejectedUntilMs = 0;

  constructor(readonly options: Required<EjectionOptions>) {}

  isEjected(nowMs: number): boolean {
    return nowMs < this.#ejectedUntilMs;
  }

  /** Consecutive failures so far. */
  get failureStreak(): number {
    return this.#failureStreak;
  }

  /** Records a failure; returns the length of the ejection it started, if it started one. */
  failed(nowMs: number): number | undefined {
    this.#failureStreak += 1;
    // Streams picked before the ejection may still fail during it: the ejection stands as is.
    if (this.isEjected(nowMs) || this.#failureStreak < this.options.consecutiveFailures) return undefined;
    const { baseBackoffMs, maxBackoffMs } = this.options;
    const backoffMs = Math.min(maxBackoffMs, baseBackoffMs * 2 ** Math.min(this.#ejectionsInRow, 30));
    this.#ejectionsInRow += 1;
    this.#ejectedUntilMs = nowMs + backoffMs;
    return backoffMs;
  }

  /** Records a success: the streak ends; the back-off resets unless an ejection is running. */
  succeeded(nowMs: number): void {
    this.#failureStreak = 0;
    // A stream picked before the ejection that succeeds late does not cut the ejection short.
    if (!this.isEjected(nowMs)) this.#ejectionsInRow = 0;
  }
}
