/**
 * The pushed config (endpoints, policies, gateways, routes): a cache of the store's
 * `config/entries/` keys, fed by the store's watch, so that every replica sharing a store sees
 * every replica's changes.
 *
 * The config version is a store revision: that of the last write to `config/version`, which
 * every config write makes in the same transaction. So every replica publishes the same
 * version for the same config. Versions grow but are not contiguous (other writes, such as
 * tokens, take revisions too). A change the store makes by itself (a lease that expired
 * deletes its entries) carries no version write: the first replica to see it "seals" it with
 * one, and listeners hear of it with that version.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ConfigChange, ConfigEntry, ConfigValue } from '../proto/control.js';
import { POLICY_DEFAULT_KEY, parseConfigEntry } from '../proto/control.js';
import { StoreError } from './errors.js';
import type { Store, StoreEvent, StoreLease, StoreOp, StoreValue, StoreWatch } from './store/store.js';

const CONFIG_PREFIX = 'config/';
const VERSION_KEY = 'config/version';
const ENTRY_KEY_PREFIX = 'config/entries/';
/** How long a writer waits for the watch to bring its own write back before it stops waiting. */
const OWN_WRITE_WAIT_MS = 10_000;
/** Pause before listing again after a watch failed for another reason than compaction. */
const RELIST_DELAY_MS = 1000;

/** Told of every change, in version order, once the version that carries it is known. */
export type ConfigListener = (version: number, changes: readonly ConfigChange[]) => void;

/** Options of {@link ConfigState.apply}. */
export interface ApplyOptions {
  /** Puts of these keys are held by the given lease (their entries go when it ends). */
  leases?: ReadonlyMap<string, StoreLease>;
  /** Write these keys even if the cache already holds the same value (to move them to a new lease). */
  force?: ReadonlySet<string>;
}

/** The config map and its version. Create with {@link ConfigState.load}. */
export class ConfigState {
  readonly #listeners: ConfigListener[] = [];
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #entries = new Map<string, ConfigValue>();
  /** Entry key → the store revision that last wrote it. */
  readonly #revisions = new Map<string, number>();
  /** Changes the watch brought that no version write has sealed yet. */
  readonly #unsealed = new Map<string, ConfigValue | null>();
  /** Writers waiting for the watch to reach their revision. */
  readonly #waiters: Array<{ revision: number; resolve: () => void }> = [];
  /** Revision of the last `config/version` write: the config version. */
  #version = 0;
  /** The store revision the cache is up to date with. */
  #seenRevision = 0;
  #watch: StoreWatch | undefined;
  #relistTimer: NodeJS.Timeout | undefined;
  #sealing = false;
  #closed = false;

  private constructor(store: Store, logger: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /**
   * Loads the config from `store` and follows its changes; on first start sets
   * `policy/default` to allow.
   * @throws StoreError naming a stored entry that is not valid config.
   */
  static async load(store: Store, logger: Logger): Promise<ConfigState> {
    const state = new ConfigState(store, logger);
    const { revision, entries } = await store.listEntries(CONFIG_PREFIX);
    for (const entry of entries) {
      const parsed = state.#parseStored(entry.key, entry.value, true);
      if (parsed === undefined) continue;
      const key = entry.key.slice(ENTRY_KEY_PREFIX.length);
      state.#entries.set(key, parsed);
      state.#revisions.set(key, entry.modRevision);
    }
    state.#version = entries.find((entry) => entry.key === VERSION_KEY)?.modRevision ?? 0;
    state.#seenRevision = revision;
    state.#follow(revision);
    // The store may have changed the config since the last version write (leases that expired
    // while no replica ran) without a trace this list can show: a fresh version makes sure
    // that every version this replica publishes names exactly what it holds.
    if (revision > state.#version) await state.#seal();
    if (!state.#entries.has(POLICY_DEFAULT_KEY)) await state.apply([[POLICY_DEFAULT_KEY, { action: 'allow' }]]);
    return state;
  }

  /** The version of the current map; 0 before anything was ever set. */
  get version(): number {
    return this.#version;
  }

  get(key: string): ConfigValue | undefined {
    return this.#entries.get(key);
  }

  /** The store revision that last wrote entry `key` (what {@link applyIf} compares), 0 when missing. */
  revisionOf(key: string): number {
    return this.#revisions.get(key) ?? 0;
  }

  /** Every entry whose key starts with `prefix` (all of them by default). */
  list(prefix = ''): ConfigEntry[] {
    const found: ConfigEntry[] = [];
    for (const [key, value] of this.#entries) if (key.startsWith(prefix)) found.push([key, value]);
    return found;
  }

  /** Calls `listener` after every change, this replica's or another's. */
  onChange(listener: ConfigListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Writes `changes` (`null` deletes) as one version step. Changes that would not alter the map
   * are dropped (unless forced); when none is left nothing is written. Resolves with the version
   * once the change is durable and in this cache (listeners have heard of it).
   */
  async apply(changes: readonly ConfigChange[], options: ApplyOptions = {}): Promise<number> {
    return (await this.#write(changes, options, undefined)) ?? this.#version;
  }

  /**
   * Like {@link apply}, but only if entry `key` was last written at store revision `revision`
   * (a version {@link apply} returned; 0: the entry must not exist). Resolves with undefined,
   * writing nothing, when it was not.
   */
  applyIf(changes: readonly ConfigChange[], ifRevision: { key: string; revision: number }, options: ApplyOptions = {}): Promise<number | undefined> {
    return this.#write(changes, options, { key: ENTRY_KEY_PREFIX + ifRevision.key, revision: ifRevision.revision });
  }

  async #write(changes: readonly ConfigChange[], options: ApplyOptions, ifRevision: { key: string; revision: number } | undefined): Promise<number | undefined> {
    const ops: StoreOp[] = [];
    for (const [key, value] of changes) {
      const current = this.#entries.get(key) ?? null;
      if (isDeepStrictEqual(current, value) && options.force?.has(key) !== true) continue;
      const storeKey = ENTRY_KEY_PREFIX + key;
      if (value === null) {
        ops.push({ type: 'delete', key: storeKey });
        continue;
      }
      const lease = options.leases?.get(key);
      ops.push(lease === undefined ? { type: 'put', key: storeKey, value: value as StoreValue } : { type: 'put', key: storeKey, value: value as StoreValue, lease });
    }
    if (ops.length === 0) return this.#version;
    ops.push({ type: 'put', key: VERSION_KEY, value: this.#version });
    const result = await this.#store.transaction(ops, ifRevision === undefined ? {} : { ifRevision });
    if (!result.ok) return undefined;
    await this.#reached(result.revision);
    return result.revision;
  }

  /** Stops following the store. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#relistTimer);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
    await this.#watch?.close();
  }

  #follow(fromRevision: number): void {
    if (this.#closed) return;
    this.#watch = this.#store.watch(CONFIG_PREFIX, fromRevision, {
      onEvents: (events) => this.#onEvents(events),
      onRelist: (err) => {
        this.#logger.warn({ code: err.code }, 'config watch fell behind the store history; listing again');
        this.#relist();
      },
      onError: (err) => {
        this.#logger.error({ err, code: err.code }, 'config watch stopped; listing again shortly');
        this.#relistTimer = setTimeout(() => this.#relist(), RELIST_DELAY_MS);
        this.#relistTimer.unref();
      },
    });
  }

  #onEvents(events: readonly StoreEvent[]): void {
    let i = 0;
    while (i < events.length) {
      const revision = events[i]!.revision;
      let sealed = false;
      for (; i < events.length && events[i]!.revision === revision; i++) {
        const event = events[i]!;
        if (event.key === VERSION_KEY) {
          if (event.type === 'put') sealed = true;
          continue;
        }
        if (!event.key.startsWith(ENTRY_KEY_PREFIX)) continue;
        const key = event.key.slice(ENTRY_KEY_PREFIX.length);
        const value = event.type === 'delete' ? null : (this.#parseStored(event.key, event.value, false) ?? null);
        this.#set(key, value, revision);
      }
      this.#seenRevision = revision;
      if (sealed) this.#publish(revision);
    }
    this.#wakeWaiters();
    if (this.#unsealed.size > 0) void this.#seal();
  }

  /** The watch cannot resume: list again, turn the difference into changes, and follow from there. */
  #relist(): void {
    if (this.#closed) return;
    void this.#watch?.close();
    this.#store
      .listEntries(CONFIG_PREFIX)
      .then(({ revision, entries }) => {
        const present = new Set<string>();
        for (const entry of entries) {
          if (!entry.key.startsWith(ENTRY_KEY_PREFIX)) continue;
          const key = entry.key.slice(ENTRY_KEY_PREFIX.length);
          const value = this.#parseStored(entry.key, entry.value, false);
          if (value === undefined) continue;
          present.add(key);
          this.#set(key, value, entry.modRevision);
        }
        for (const key of [...this.#entries.keys()]) if (!present.has(key)) this.#set(key, null, revision);
        const marker = entries.find((entry) => entry.key === VERSION_KEY)?.modRevision ?? 0;
        this.#seenRevision = revision;
        if (marker > this.#version) this.#publish(marker);
        this.#follow(revision);
        this.#wakeWaiters();
        if (this.#unsealed.size > 0) void this.#seal();
      })
      .catch((err: unknown) => {
        this.#logger.error({ err }, 'cannot list the config; trying again shortly');
        this.#relistTimer = setTimeout(() => this.#relist(), RELIST_DELAY_MS);
        this.#relistTimer.unref();
      });
  }

  #set(key: string, value: ConfigValue | null, revision: number): void {
    if (value === null) this.#revisions.delete(key);
    else this.#revisions.set(key, revision);
    const current = this.#entries.get(key) ?? null;
    if (isDeepStrictEqual(current, value)) return;
    if (value === null) this.#entries.delete(key);
    else this.#entries.set(key, value);
    this.#unsealed.set(key, value);
  }

  #publish(version: number): void {
    this.#version = version;
    const changes = [...this.#unsealed];
    this.#unsealed.clear();
    for (const listener of this.#listeners) listener(version, changes);
  }

  /**
   * Gives unsealed changes a version: a version write that applies only if nobody wrote one
   * since, so that of several replicas seeing the same change only one seals it.
   */
  async #seal(): Promise<void> {
    if (this.#sealing || this.#closed) return;
    this.#sealing = true;
    try {
      const result = await this.#store.transaction([{ type: 'put', key: VERSION_KEY, value: this.#version }], { ifRevision: { key: VERSION_KEY, revision: this.#version } });
      if (result.ok) await this.#reached(result.revision);
    } catch (err) {
      this.#logger.warn({ err }, 'cannot write a config version for changes the store made; the next write carries them');
    } finally {
      this.#sealing = false;
    }
  }

  #reached(revision: number): Promise<void> {
    if (this.#seenRevision >= revision || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#logger.warn({ revision }, 'the config watch has not brought back a durable write yet');
        resolve();
      }, OWN_WRITE_WAIT_MS);
      timer.unref();
      this.#waiters.push({
        revision,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  #wakeWaiters(): void {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const waiter = this.#waiters[i]!;
      if (waiter.revision <= this.#seenRevision) {
        this.#waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /**
   * A stored value as config; undefined for the version key, keys of unknown kinds and (after
   * start) invalid values, which are logged. At start an invalid value stops the load.
   */
  #parseStored(storeKey: string, value: StoreValue | undefined, atLoad: boolean): ConfigValue | undefined {
    if (!storeKey.startsWith(ENTRY_KEY_PREFIX)) return undefined;
    const key = storeKey.slice(ENTRY_KEY_PREFIX.length);
    let parsed: ConfigValue | undefined;
    try {
      parsed = parseConfigEntry(key, value);
    } catch (err) {
      if (atLoad) throw new StoreError(`stored config entry is invalid: ${(err as Error).message}`, { cause: err });
      this.#logger.error({ key, err }, 'ignoring an invalid config entry another writer stored');
      return undefined;
    }
    if (parsed === undefined) this.#logger.warn({ key }, 'ignoring a stored config entry of unknown kind');
    return parsed;
  }
}
