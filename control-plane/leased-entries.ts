/**
 * Config entries that sessions hold: endpoints and gateway entries. An entry is written under
 * this replica's store lease ({@link ReplicaLease}) while a session of this replica holds it.
 * Once the session ends the entry stays for `leaseTtlMs` and goes unless its owner comes back
 * (here or at another replica). So an entry disappears when its owner and its replica are both
 * gone, never because one replica restarted.
 *
 * Several replicas may write one entry (a sidecar that moved). Removals are conditional on the
 * entry still being this replica's last write, so that a replica never removes an entry that
 * another replica's session holds now.
 *
 * Writes of one entry go one after another, each computed from the entry as the one before it
 * left it: a sidecar that reports unhealthy and then healthy again within one store write
 * must end healthy (the second report was once compared with the cache before the first had
 * reached it, found "unchanged" and dropped).
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ConfigChange, ConfigValue } from '../proto/control.js';
import type { ApplyOptions, ConfigState } from './config-state.js';
import type { ReplicaLease } from './replica-lease.js';

/**
 * Applies changes as one config version step (see {@link ConfigState.apply}); with `ifRevision`
 * only if that entry is unchanged since (see {@link ConfigState.applyIf}), else resolving with
 * undefined.
 */
export type ConfigWriter = (changes: readonly ConfigChange[], options: ApplyOptions, ifRevision?: { key: string; revision: number }) => Promise<number | undefined>;

/** What {@link LeasedEntries} needs. */
export interface LeasedEntriesInit {
  config: ConfigState;
  lease: ReplicaLease;
  leaseTtlMs: number;
  logger: Logger;
  /** Names the entries in logs (`endpoint`, `gateway`). */
  what: string;
  /**
   * Writes every change of these entries, so that an owner can add derived changes to the same
   * version step (gateway entries bring their routes along). @default config.apply
   */
  write?: ConfigWriter;
}

/** This replica's last write of an entry: the revision, and the lease it was made under. */
interface OwnWrite {
  revision: number;
  leaseId: string;
}

/** Session-held config entries, by entry key. */
export class LeasedEntries {
  /** key → the session that holds the entry. */
  readonly #holders = new Map<string, object>();
  /** key → timer that removes its entry, while nobody here holds it. */
  readonly #lingerTimers = new Map<string, NodeJS.Timeout>();
  readonly #ownWrites = new Map<string, OwnWrite>();
  /** key → the end of its queue of writes. */
  readonly #queues = new Map<string, Promise<void>>();
  readonly #config: ConfigState;
  readonly #lease: ReplicaLease;
  readonly #leaseTtlMs: number;
  readonly #logger: Logger;
  readonly #what: string;
  readonly #write: ConfigWriter;
  #closed = false;

  constructor(init: LeasedEntriesInit) {
    this.#config = init.config;
    this.#lease = init.lease;
    this.#leaseTtlMs = init.leaseTtlMs;
    this.#logger = init.logger;
    this.#what = init.what;
    this.#write = init.write ?? ((changes, options, ifRevision) => (ifRevision === undefined ? init.config.apply(changes, options) : init.config.applyIf(changes, ifRevision, options)));
    init.lease.onReplaced(() => this.#rewriteHeld());
  }

  /** (Re)places entry `key`, held by `holder`; a previous holder loses it. Resolves with the config version. */
  put(holder: object, key: string, value: ConfigValue): Promise<number> {
    this.#cancelLinger(key);
    this.#holders.set(key, holder);
    return this.#inTurn(key, () => this.#writeHeld(key, value));
  }

  /** Replaces entry `key` with `update(current)`. Ignored unless `holder` holds it and it exists. */
  update<T extends ConfigValue>(holder: object, key: string, update: (current: T) => T): Promise<number> {
    return this.#inTurn(key, () => {
      const current = this.#config.get(key) as T | undefined;
      if (this.#holders.get(key) !== holder || current === undefined) return Promise.resolve(this.#config.version);
      return this.#writeHeld(key, update(current));
    });
  }

  /** The owner is draining: its entry goes now. Ignored unless `holder` holds it. */
  remove(holder: object, key: string): Promise<number> {
    if (this.#holders.get(key) !== holder) return Promise.resolve(this.#config.version);
    this.#holders.delete(key);
    this.#cancelLinger(key);
    this.#ownWrites.delete(key);
    return this.#inTurn(key, () => this.#write([[key, null]], {}).then((version) => version ?? this.#config.version));
  }

  /** Runs `write` once every earlier write of `key` has settled (and reached the cache). */
  #inTurn<T>(key: string, write: () => Promise<T>): Promise<T> {
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const result = previous.then(write);
    const end = result.then(
      () => undefined,
      () => undefined,
    );
    this.#queues.set(key, end);
    void end.then(() => {
      if (this.#queues.get(key) === end) this.#queues.delete(key);
    });
    return result;
  }

  /** `holder`'s session ended: its entry now lives for the lease time unless it is put again. */
  release(holder: object, key: string): void {
    if (this.#holders.get(key) !== holder) return;
    this.#holders.delete(key);
    if (this.#config.get(key) !== undefined) this.#startLinger(key);
  }

  /** Whether a session of this replica holds entry `key`. */
  isHeld(key: string): boolean {
    return this.#holders.has(key);
  }

  /** Stops every timer; entries stay stored, under a lease that runs out unless renewed. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#lingerTimers.values()) clearTimeout(timer);
    this.#lingerTimers.clear();
  }

  /**
   * Writes a held entry under the current lease. A write that would change nothing is skipped
   * only when the stored entry is still this replica's own write under that lease; otherwise
   * it is forced, to move the entry back under this replica's lease.
   */
  async #writeHeld(key: string, value: ConfigValue): Promise<number> {
    const lease = this.#lease.current;
    const own = this.#ownWrites.get(key);
    const stillOurs = own !== undefined && own.leaseId === lease.id && own.revision === this.#config.revisionOf(key);
    if (stillOurs && isDeepStrictEqual(this.#config.get(key), value)) return this.#config.version;
    const version = (await this.#write([[key, value]], { leases: new Map([[key, lease]]), force: new Set([key]) })) ?? this.#config.version;
    // Only if it is still held: a release or a removal meanwhile decides what happens next.
    if (this.#holders.has(key) || this.#lingerTimers.has(key)) this.#ownWrites.set(key, { revision: this.#config.revisionOf(key), leaseId: lease.id });
    return version;
  }

  #rewriteHeld(): void {
    for (const key of this.#holders.keys()) {
      const rewrite = (): Promise<number> => {
        // As the entry is when its turn comes: it may have changed, or gone, meanwhile.
        const current = this.#config.get(key);
        return current === undefined || !this.#holders.has(key) ? Promise.resolve(this.#config.version) : this.#writeHeld(key, current);
      };
      this.#inTurn(key, rewrite).catch((err: unknown) => this.#logger.error({ err, key }, `cannot write ${this.#what} under the new lease`));
    }
  }

  #startLinger(key: string): void {
    this.#cancelLinger(key);
    // Sessions closing during shutdown must not start timers that would outlive the store.
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#lingerTimers.delete(key);
      const own = this.#ownWrites.get(key);
      if (this.#holders.has(key) || own === undefined) return;
      this.#ownWrites.delete(key);
      this.#write([[key, null]], {}, { key, revision: own.revision })
        .then((version) => {
          if (version === undefined) this.#logger.info({ key }, `${this.#what} was taken over by another replica; leaving it`);
          else this.#logger.info({ key }, `owner did not come back; removed ${this.#what}`);
        })
        .catch((err: unknown) => this.#logger.error({ err, key }, `cannot persist ${this.#what} removal`));
    }, this.#leaseTtlMs);
    // Pending removals must not keep a closing process alive.
    timer.unref();
    this.#lingerTimers.set(key, timer);
  }

  #cancelLinger(key: string): void {
    const timer = this.#lingerTimers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.#lingerTimers.delete(key);
  }
}
