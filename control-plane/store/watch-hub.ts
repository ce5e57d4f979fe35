/**
 * In-process watches over a bounded history of changes, for stores that hold their state in
 * this process (the file store). Callbacks always run from a microtask, never inside the call
 * that caused them, and each watch gets its changes in revision order through its own queue.
 */
import { StoreCompactedError } from './errors.js';
import type { StoreEvent, StoreWatch, StoreWatchListener } from './store.js';

/** How many past events a file store keeps for watches that start behind. @default 10 000 */
export const DEFAULT_WATCH_HISTORY_EVENTS = 10_000;

/** Watches of one store, and the history they can start from. */
export class WatchHub {
  /** Events with revisions above `#floor`, oldest first. */
  readonly #history: StoreEvent[] = [];
  /** Every change after this revision is in `#history`; older ones are compacted. */
  #floor: number;
  readonly #watches = new Set<HubWatch>();
  readonly #historyLimit: number;

  constructor(
    startRevision: number,
    historyLimit = DEFAULT_WATCH_HISTORY_EVENTS,
  ) {
    this.#historyLimit = historyLimit;
    this.#floor = startRevision;
  }

  /** Records changes that are now durable, in revision order, and hands them to the watches. */
  publish(events: readonly StoreEvent[]): void {
    if (events.length === 0) return;
    this.#history.push(...events);
    // Drop whole revisions, so that a revision is either fully in the history or not at all.
    while (this.#history.length > this.#historyLimit) {
      const oldest = (this.#history[0] as StoreEvent).revision;
      while (this.#history[0]?.revision === oldest) this.#history.shift();
      this.#floor = oldest;
    }
    for (const watch of this.#watches) watch.offer(events);
  }

  watch(prefix: string, fromRevision: number, listener: StoreWatchListener): StoreWatch {
    const watch = new HubWatch(prefix, fromRevision, listener, (w) => this.#watches.delete(w));
    if (fromRevision < this.#floor) {
      watch.relist(new StoreCompactedError(fromRevision, `cannot watch from revision ${fromRevision}: history starts after revision ${this.#floor}`));
      return watch;
    }
    watch.offer(this.#history);
    this.#watches.add(watch);
    return watch;
  }

  /** Stops every watch without telling its listener. */
  closeAll(): void {
    for (const watch of [...this.#watches]) void watch.close();
  }
}

class HubWatch implements StoreWatch {
  #delivered: number;
  /** Highest revision queued so far; later offers skip what is at or below it. */
  #queuedThrough: number;
  #queue: StoreEvent[] = [];
  #flushScheduled = false;
  /** Set by close(), or once the watch stopped for a relist. */
  #closed = false;
  #closedByCaller = false;
  readonly #prefix: string;
  readonly #listener: StoreWatchListener;
  readonly #onClose: (watch: HubWatch) => void;

  constructor(
    prefix: string,
    fromRevision: number,
    listener: StoreWatchListener,
    onClose: (watch: HubWatch) => void,
  ) {
    this.#prefix = prefix;
    this.#listener = listener;
    this.#onClose = onClose;
    this.#delivered = fromRevision;
    this.#queuedThrough = fromRevision;
  }

  get revision(): number {
    return this.#delivered;
  }

  offer(events: readonly StoreEvent[]): void {
    for (const event of events) {
      if (event.revision <= this.#queuedThrough || !event.key.startsWith(this.#prefix)) continue;
      this.#queue.push(event);
    }
    const last = events[events.length - 1];
    if (last !== undefined && last.revision > this.#queuedThrough) this.#queuedThrough = last.revision;
    if (this.#queue.length > 0 && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
  }

  relist(err: StoreCompactedError): void {
    this.#closed = true;
    queueMicrotask(() => {
      if (!this.#closedByCaller) this.#listener.onRelist(err);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#closedByCaller = true;
    this.#queue = [];
    this.#onClose(this);
    return Promise.resolve();
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#queue.length === 0) return;
    const events = this.#queue;
    this.#queue = [];
    this.#delivered = (events[events.length - 1] as StoreEvent).revision;
    // Each listener gets its own copies: one must not see another's mutations.
    this.#listener.onEvents(events.map((event) => structuredClone(event)));
  }
}
