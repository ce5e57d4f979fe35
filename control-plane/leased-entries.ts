/**
 * Config entries held by leases: endpoints and gateway entries. A connected session holds
 * its entry's lease open; once the session ends the entry stays for `leaseTtlMs` and goes
 * unless its owner comes back. After a restart every stored entry gets a fresh lease, so
 * owners that reconnect in time keep their entries.
 */
import type { Logger } from 'pino';
import type { ConfigChange, ConfigValue } from '../proto/control.js';
import type { ConfigState } from './config-state.js';

/** Applies changes as one config version step (see {@link ConfigState.apply}). */
export type ConfigWriter = (changes: readonly ConfigChange[]) => Promise<number>;

/** What {@link LeasedEntries} needs. */
export interface LeasedEntriesInit {
  config: ConfigState;
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

/** Leases on config entries, by entry key. */
export class LeasedEntries {
  /** key → the session that holds its lease open. */
  readonly #holders = new Map<string, object>();
  /** key → timer that removes its entry, while nobody holds the lease. */
  readonly #leaseTimers = new Map<string, NodeJS.Timeout>();
  readonly #config: ConfigState;
  readonly #leaseTtlMs: number;
  readonly #logger: Logger;
  readonly #what: string;
  readonly #write: ConfigWriter;
  #closed = false;

  constructor(init: LeasedEntriesInit) {
    this.#config = init.config;
    this.#leaseTtlMs = init.leaseTtlMs;
    this.#logger = init.logger;
    this.#what = init.what;
    this.#write = init.write ?? ((changes) => init.config.apply(changes));
  }

  /** Gives every stored entry under `prefix` that nobody holds a fresh lease. Call once after loading. */
  start(prefix: string): void {
    for (const [key] of this.#config.list(prefix)) if (!this.#holders.has(key)) this.#startLease(key);
  }

  /** (Re)places entry `key`, held open by `holder`; a previous holder loses the lease. Resolves with the config version. */
  put(holder: object, key: string, value: ConfigValue): Promise<number> {
    this.#cancelLease(key);
    this.#holders.set(key, holder);
    return this.#write([[key, value]]);
  }

  /** Replaces entry `key` with `update(current)`. Ignored unless `holder` holds the lease and the entry exists. */
  update<T extends ConfigValue>(holder: object, key: string, update: (current: T) => T): Promise<number> {
    const current = this.#config.get(key) as T | undefined;
    if (this.#holders.get(key) !== holder || current === undefined) return Promise.resolve(this.#config.version);
    return this.#write([[key, update(current)]]);
  }

  /** The owner is draining: its entry goes now. Ignored unless `holder` holds the lease. */
  remove(holder: object, key: string): Promise<number> {
    if (this.#holders.get(key) !== holder) return Promise.resolve(this.#config.version);
    this.#holders.delete(key);
    this.#cancelLease(key);
    return this.#write([[key, null]]);
  }

  /** `holder`'s session ended: its entry now lives for the lease time unless it is put again. */
  release(holder: object, key: string): void {
    if (this.#holders.get(key) !== holder) return;
    this.#holders.delete(key);
    if (this.#config.get(key) !== undefined) this.#startLease(key);
  }

  /** Whether a session currently holds the lease of entry `key`. */
  isHeld(key: string): boolean {
    return this.#holders.has(key);
  }

  /** Stops every lease timer; entries stay stored for the next start. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#leaseTimers.values()) clearTimeout(timer);
    this.#leaseTimers.clear();
  }

  #startLease(key: string): void {
    this.#cancelLease(key);
    // Sessions closing during shutdown must not start leases that would outlive the store.
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#leaseTimers.delete(key);
      if (this.#holders.has(key)) return;
      this.#logger.info({ key }, `lease expired; removing ${this.#what}`);
      this.#write([[key, null]]).catch((err: unknown) => {
        this.#logger.error({ err, key }, `cannot persist ${this.#what} removal`);
      });
    }, this.#leaseTtlMs);
    // Pending leases must not keep a closing process alive.
    timer.unref();
    this.#leaseTimers.set(key, timer);
  }

  #cancelLease(key: string): void {
    const timer = this.#leaseTimers.get(key);
    if (timer !== undefined) clearTimeout(timer);
    this.#leaseTimers.delete(key);
  }
}
