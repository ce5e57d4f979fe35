/**
 * The leader's sweep of session-held entries (endpoints, gateways) that no lease holds: those
 * written before entries had leases, or by a replica that lost its lease while the store was
 * away. An entry seen without a lease in two sweeps a lease time apart, unchanged, is removed
 * (only if still unchanged), as its owner would have put it under a lease again by then.
 */
import type { Logger } from 'pino';
import type { ConfigState } from './config-state.js';
import type { Store } from './store/store.js';

const ENTRY_KEY_PREFIX = 'config/entries/';

/** Options of {@link OrphanSweeper}. */
export interface OrphanSweeperInit {
  store: Store;
  config: ConfigState;
  /** Config key prefixes of session-held entries (`endpoint/`, `gateway/`). */
  prefixes: readonly string[];
  intervalMs: number;
  logger: Logger;
}

/** Runs while this replica leads. */
export class OrphanSweeper {
  readonly #init: OrphanSweeperInit;
  /** Config key → revision it had, unleased, at the last sweep. */
  #suspects = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(init: OrphanSweeperInit) {
    this.#init = init;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#suspects.clear();
    this.#timer = setInterval(() => {
      this.sweep().catch((err: unknown) => this.#init.logger.warn({ err }, 'cannot sweep unleased entries now'));
    }, this.#init.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One sweep; resolves with the number of entries removed. */
  async sweep(): Promise<number> {
    const { store, config, prefixes, logger } = this.#init;
    const next = new Map<string, number>();
    let removed = 0;
    for (const prefix of prefixes) {
      const { entries } = await store.listEntries(ENTRY_KEY_PREFIX + prefix);
      for (const entry of entries) {
        if (entry.lease !== undefined) continue;
        const key = entry.key.slice(ENTRY_KEY_PREFIX.length);
        if (this.#suspects.get(key) !== entry.modRevision) {
          next.set(key, entry.modRevision);
          continue;
        }
        if ((await config.applyIf([[key, null]], { key, revision: entry.modRevision })) !== undefined) {
          removed += 1;
          logger.info({ key }, 'removed an entry that no session holds');
        }
      }
    }
    this.#suspects = next;
    return removed;
  }
}
