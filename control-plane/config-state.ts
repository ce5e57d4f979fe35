/**
 * The pushed config: a versioned key/value map (endpoints, policies) kept in memory and
 * persisted through the {@link Store}. Every effective change bumps one global version, which
 * is persisted too so that it never goes backwards across restarts.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { ConfigChange, ConfigEntry, ConfigValue } from '../proto/control.js';
import { POLICY_DEFAULT_KEY, parseConfigEntry } from '../proto/control.js';
import { StoreError } from './errors.js';
import type { Store, StoreValue } from './store/store.js';

const VERSION_KEY = 'config/version';
const ENTRY_KEY_PREFIX = 'config/entries/';

/** Told of every effective change, synchronously, in version order. */
export type ConfigListener = (version: number, changes: readonly ConfigChange[]) => void;

/** The config map and its version. Create with {@link ConfigState.load}. */
export class ConfigState {
  private readonly listeners: ConfigListener[] = [];
  /** Store writes, chained so that they land in version order on any store. Never rejects. */
  private persistQueue: Promise<void> = Promise.resolve();

  private constructor(
    private readonly store: Store,
    private readonly entries: Map<string, ConfigValue>,
    private currentVersion: number,
  ) {}

  /**
   * Loads the config from `store`; on first start sets `policy/default` to allow.
   * @throws StoreError naming a stored entry that is not valid config.
   */
  static async load(store: Store, logger: Logger): Promise<ConfigState> {
    const storedVersion = await store.get(VERSION_KEY);
    const entries = new Map<string, ConfigValue>();
    for (const [storeKey, value] of await store.list(ENTRY_KEY_PREFIX)) {
      const key = storeKey.slice(ENTRY_KEY_PREFIX.length);
      let parsed: ConfigValue | undefined;
      try {
        parsed = parseConfigEntry(key, value);
      } catch (err) {
        throw new StoreError(`stored config entry is invalid: ${(err as Error).message}`, { cause: err });
      }
      if (parsed === undefined) logger.warn({ key }, 'ignoring a stored config entry of unknown kind');
      else entries.set(key, parsed);
    }
    const version = typeof storedVersion === 'number' && Number.isSafeInteger(storedVersion) ? storedVersion : 0;
    const state = new ConfigState(store, entries, version);
    if (!entries.has(POLICY_DEFAULT_KEY)) await state.apply([[POLICY_DEFAULT_KEY, { action: 'allow' }]]);
    return state;
  }

  /** The version of the current map; 0 before anything was ever set. */
  get version(): number {
    return this.currentVersion;
  }

  get(key: string): ConfigValue | undefined {
    return this.entries.get(key);
  }

  /** Every entry whose key starts with `prefix` (all of them by default). */
  list(prefix = ''): ConfigEntry[] {
    const found: ConfigEntry[] = [];
    for (const [key, value] of this.entries) if (key.startsWith(prefix)) found.push([key, value]);
    return found;
  }

  /** Calls `listener` after every effective change. */
  onChange(listener: ConfigListener): void {
    this.listeners.push(listener);
  }

  /**
   * Applies `changes` (`null` deletes) as one version step. Changes that would not alter the
   * map are dropped; when none is left the version stays. The map and the listeners see the
   * change at once; the returned promise resolves with the new version once it is durable.
   */
  apply(changes: readonly ConfigChange[]): Promise<number> {
    const effective = new Map<string, ConfigValue | null>();
    for (const [key, value] of changes) {
      const current = this.entries.get(key) ?? null;
      if (isDeepStrictEqual(current, value)) effective.delete(key);
      else effective.set(key, value);
    }
    if (effective.size === 0) return this.persistQueue.then(() => this.currentVersion);
    const version = ++this.currentVersion;
    for (const [key, value] of effective) {
      if (value === null) this.entries.delete(key);
      else this.entries.set(key, value);
    }
    const applied = [...effective];
    for (const listener of this.listeners) listener(version, applied);
    const persisted = this.persistQueue.then(() => this.persist(version, applied));
    // A failed write fails its caller, not every later change.
    this.persistQueue = persisted.catch(() => undefined);
    return persisted.then(() => version);
  }

  private async persist(version: number, changes: ConfigChange[]): Promise<void> {
    const writes: Array<Promise<unknown>> = changes.map(([key, value]) =>
      value === null ? this.store.delete(ENTRY_KEY_PREFIX + key) : this.store.put(ENTRY_KEY_PREFIX + key, value as StoreValue),
    );
    writes.push(this.store.put(VERSION_KEY, version));
    await Promise.all(writes);
  }
}
