/** What one check of the young generation found, and did. */
export type TrimCheck = 'small' | 'busy' | 'trimmed' | 'kept';

export interface YoungGenerationTrimmerInit {
  /** The young generation's reserved and used bytes now (V8's `new_space`). */
  readYoungGeneration(): { sizeBytes: number; usedBytes: number };
  /** A full, synchronous garbage collection. */
  collectGarbage(): void;
  /** Between checks. @default 1000 */
  checkIntervalMs?: number;
  /** After {@link KEPT_BEFORE_BACKING_OFF} collections in a row that did not shrink the young generation, the interval doubles, up to this. @default 60000 */
  maxCheckIntervalMs?: number;
  /** A young generation this small is left alone. @default 4 MiB */
  trimAboveBytes?: number;
  /** Allocated between two checks, this little counts as idle. @default 1 MiB */
  idleAllocationBytes?: number;
}

/** V8's young generation: at least 1 MiB (64-bit), grown up to 16 MiB while a process allocates. */
const DEFAULT_TRIM_ABOVE_BYTES = 4 * 1024 * 1024;
const DEFAULT_IDLE_ALLOCATION_BYTES = 1024 * 1024;
const DEFAULT_CHECK_INTERVAL_MS = 1_000;
const DEFAULT_MAX_CHECK_INTERVAL_MS = 60_000;
/**
 * V8 judges the allocation rate over its last 5 s, so a collection soon after start-up's last
 * busy moment keeps the young generation large, and one about 5 s later shrinks it: checks
 * stay 1 s apart for that long (a full GC of an idle sidecar's heap costs 10–20 ms), then
 * become rarer.
 */
export const KEPT_BEFORE_BACKING_OFF = 6;

/**
 * Gives back a grown young generation while the process is idle, with one full GC.
 *
 * V8 shrinks the young generation only at the end of a GC that runs while the allocation rate
 * is low, which in an idle process is the memory reducer's GC; with incremental marking off
 * (cli/gc-tuning.ts) that GC never comes. This runs it: when the young generation is large and
 * hardly anything was allocated since the last check. A busy process is left alone (its young
 * generation is the size its allocation rate wants), and a collection that kept the young
 * generation large makes the checks rarer, so that an almost idle process does not pay a full
 * GC every few seconds.
 */
export class YoungGenerationTrimmer {
  readonly #init: YoungGenerationTrimmerInit;
  readonly #baseIntervalMs: number;
  readonly #maxIntervalMs: number;
  readonly #trimAboveBytes: number;
  readonly #idleAllocationBytes: number;
  #intervalMs: number;
  #lastUsedBytes: number;
  #keptInARow = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(init: YoungGenerationTrimmerInit) {
    this.#init = init;
    this.#baseIntervalMs = init.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
    this.#maxIntervalMs = init.maxCheckIntervalMs ?? DEFAULT_MAX_CHECK_INTERVAL_MS;
    this.#trimAboveBytes = init.trimAboveBytes ?? DEFAULT_TRIM_ABOVE_BYTES;
    this.#idleAllocationBytes = init.idleAllocationBytes ?? DEFAULT_IDLE_ALLOCATION_BYTES;
    this.#intervalMs = this.#baseIntervalMs;
    this.#lastUsedBytes = init.readYoungGeneration().usedBytes;
  }

  /** The wait before the next check. */
  get intervalMs(): number {
    return this.#intervalMs;
  }

  /** Checks on an unreferenced timer (it never keeps the process alive) until {@link stop}. */
  start(): void {
    if (this.#timer !== undefined) return;
    const schedule = (): void => {
      this.#timer = setTimeout(() => {
        this.check();
        schedule();
      }, this.#intervalMs);
      this.#timer.unref();
    };
    schedule();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One check: collects when the young generation is large and the process was idle since the last one. */
  check(): TrimCheck {
    const now = this.#init.readYoungGeneration();
    // Used bytes fall when a scavenge ran in between: that much allocation is not idle.
    const allocatedBytes = now.usedBytes - this.#lastUsedBytes;
    this.#lastUsedBytes = now.usedBytes;
    if (now.sizeBytes <= this.#trimAboveBytes) return this.#settle('small');
    if (allocatedBytes < 0 || allocatedBytes > this.#idleAllocationBytes) return this.#settle('busy');
    this.#init.collectGarbage();
    const after = this.#init.readYoungGeneration();
    this.#lastUsedBytes = after.usedBytes;
    if (after.sizeBytes <= this.#trimAboveBytes) return this.#settle('trimmed');
    this.#keptInARow += 1;
    if (this.#keptInARow >= KEPT_BEFORE_BACKING_OFF) this.#intervalMs = Math.min(this.#intervalMs * 2, this.#maxIntervalMs);
    return 'kept';
  }

  #settle(result: TrimCheck): TrimCheck {
    this.#keptInARow = 0;
    this.#intervalMs = this.#baseIntervalMs;
    return result;
  }
}
