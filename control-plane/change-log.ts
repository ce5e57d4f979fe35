/**
 * The recent config changes, by version, so that a sidecar that reconnects (here or from
 * another replica: versions are store revisions, the same everywhere) can be sent a delta from
 * the version it holds instead of a snapshot. Bounded by the number of changes it keeps.
 */
import type { ConfigChange } from '../proto/control.js';

/** Changes kept for resuming sessions. */
export const DEFAULT_CHANGE_LOG_CHANGES = 20_000;

interface Step {
  version: number;
  changes: readonly ConfigChange[];
}

export class ChangeLog {
  readonly #steps: Step[] = [];
  /** Index of the oldest kept step in #steps (steps before it are dropped lazily). */
  #head = 0;
  #changeCount = 0;
  /** Every change after this version is kept. */
  #floor: number;
  readonly #maxChanges: number;

  /** `version`: the config's version now; the log holds every change after it. */
  constructor(version: number, maxChanges = DEFAULT_CHANGE_LOG_CHANGES) {
    this.#floor = version;
    this.#maxChanges = maxChanges;
  }

  append(version: number, changes: readonly ConfigChange[]): void {
    this.#steps.push({ version, changes });
    this.#changeCount += changes.length;
    while (this.#changeCount > this.#maxChanges && this.#head < this.#steps.length) {
      const dropped = this.#steps[this.#head++]!;
      this.#changeCount -= dropped.changes.length;
      this.#floor = dropped.version;
    }
    // Compact now and then, so the array does not hold dropped steps forever.
    if (this.#head > 1024 && this.#head * 2 > this.#steps.length) {
      this.#steps.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /**
   * Every change after `version`, last write per key, or undefined when the log no longer
   * reaches back to it or more than `maxKeys` keys changed since (a snapshot is then cheaper).
   */
  since(version: number, maxKeys: number, keep: (key: string) => boolean): Map<string, ConfigChange[1]> | undefined {
    if (version < this.#floor) return undefined;
    const merged = new Map<string, ConfigChange[1]>();
    for (let index = this.#firstAfter(version); index < this.#steps.length; index++) {
      for (const [key, value] of this.#steps[index]!.changes) {
        if (!keep(key)) continue;
        merged.set(key, value);
        if (merged.size > maxKeys) return undefined;
      }
    }
    return merged;
  }

  /** Index of the first kept step whose version is above `version` (binary search: versions increase). */
  #firstAfter(version: number): number {
    let low = this.#head;
    let high = this.#steps.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#steps[middle]!.version <= version) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
