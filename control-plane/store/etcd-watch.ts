/**
 * A {@link StoreWatch} on etcd. etcd3's watcher reconnects by itself, but resumes from the
 * revision of the last response header it saw, which can be ahead of the last event it
 * delivered (a creation or progress header). So this watch keeps the revision of the last
 * change it delivered, makes every reconnect resume right after it, and drops anything at or
 * below it: each change exactly once, in order, across any number of reconnects.
 */
import type { Etcd3, IEvent, IWatchResponse, Watcher } from 'etcd3';
import { StoreCompactedError } from './errors.js';
import type { StoreError } from './errors.js';
import { isCompactedError, toStoreError, withDeadline } from './etcd-client.js';
import type { StoreEvent, StoreValue, StoreWatch, StoreWatchListener } from './store.js';

/** What an {@link EtcdWatch} needs from its store. */
export interface EtcdWatchInit {
  client: Etcd3;
  /** The store's key prefix, which the watch strips from keys. */
  storePrefix: string;
  /** The watched prefix, below the store prefix. */
  prefix: string;
  fromRevision: number;
  listener: StoreWatchListener;
  callTimeoutMs: number;
  /** Told when the watch ends, whatever the reason. */
  onEnd: (watch: EtcdWatch) => void;
}

export class EtcdWatch implements StoreWatch {
  #delivered: number;
  readonly #watcher: Watcher;
  #ended = false;
  readonly #init: EtcdWatchInit;

  constructor(init: EtcdWatchInit) {
    this.#init = init;
    this.#delivered = init.fromRevision;
    this.#watcher = init.client
      .watch()
      .prefix(init.storePrefix + init.prefix)
      .startRevision(String(init.fromRevision + 1))
      // watcher(), not create(): the handlers must be on before etcd answers.
      .watcher();
    this.#watcher.on('data', (res) => this.#onData(res));
    this.#watcher.on('disconnected', () => {
      this.#watcher.request.start_revision = String(this.#delivered + 1);
    });
    this.#watcher.on('error', (err) => void this.#onCanceled(err));
  }

  get revision(): number {
    return this.#delivered;
  }

  async close(): Promise<void> {
    if (this.#ended) return;
    this.#end();
    // A cancel waits for etcd's answer; with etcd away that may take long, and nothing is
    // delivered after end() anyway.
    await withDeadline(this.#watcher.cancel(), this.#init.callTimeoutMs, 'cancel watch').catch(() => undefined);
  }

  #onData(res: IWatchResponse): void {
    if (this.#ended) return;
    const events: StoreEvent[] = [];
    for (const event of res.events) {
      const revision = Number(event.kv.mod_revision);
      if (revision <= this.#delivered) continue;
      try {
        events.push(this.#toStoreEvent(event, revision));
      } catch (err) {
        this.#fail(toStoreError(err, `watch ${this.#init.prefix}`));
        return;
      }
    }
    const last = events[events.length - 1];
    if (last === undefined) return;
    this.#delivered = last.revision;
    this.#init.listener.onEvents(events);
  }

  #toStoreEvent(event: IEvent, revision: number): StoreEvent {
    const key = event.kv.key.toString('utf8').slice(this.#init.storePrefix.length);
    if (event.type === 'Delete') return { type: 'delete', key, revision };
    return { type: 'put', key, value: JSON.parse(event.kv.value.toString('utf8')) as StoreValue, revision };
  }

  /** etcd cancelled the watch: compaction (told apart by a read at the revision needed) or a refusal. */
  async #onCanceled(err: Error): Promise<void> {
    if (this.#ended) return;
    const resumeFrom = this.#delivered + 1;
    let compacted = false;
    try {
      await this.#init.client.kv.range({ key: Buffer.from(this.#init.storePrefix), revision: String(resumeFrom), limit: 1, count_only: true });
    } catch (probeErr) {
      compacted = isCompactedError(probeErr);
    }
    if (this.#ended) return;
    this.#end();
    if (compacted) {
      this.#init.listener.onRelist(
        new StoreCompactedError(this.#delivered, `cannot watch ${this.#init.prefix} after revision ${this.#delivered}: etcd compacted it away`, { cause: err }),
      );
    } else {
      this.#init.listener.onError?.(toStoreError(err, `watch ${this.#init.prefix}`));
    }
  }

  #fail(err: StoreError): void {
    this.#end();
    this.#watcher.cancel().catch(() => undefined);
    this.#init.listener.onError?.(err);
  }

  #end(): void {
    this.#ended = true;
    this.#init.onEnd(this);
  }
}
