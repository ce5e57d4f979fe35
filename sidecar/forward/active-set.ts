/**
 * A set of things in flight (connections, links) that can say when it is empty: a drain
 * waits on it instead of polling.
 */
export class ActiveSet<T> {
  readonly #items = new Set<T>();
  #waiters: (() => void)[] = [];

  get size(): number {
    return this.#items.size;
  }

  add(item: T): void {
    this.#items.add(item);
  }

  delete(item: T): void {
    if (this.#items.delete(item) && this.#items.size === 0) {
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.#items.values();
  }

  /** Resolves once the set is empty (at once if it is). */
  whenEmpty(): Promise<void> {
    if (this.#items.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}
