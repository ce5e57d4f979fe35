/**
 * One store lease per control-plane process, kept alive while it runs. Entries that this
 * replica's sessions hold (endpoints, gateways) are written under it, so that when the
 * process dies without a word its entries go one lease time later — unless their sidecars
 * have registered again with another replica meanwhile, which moves them to that replica's
 * lease. Renewing one lease instead of one per session keeps the store's load independent of
 * the number of sidecars.
 */
import type { Logger } from 'pino';
import { StoreErrorCode } from './store/errors.js';
import type { Store, StoreLease } from './store/store.js';

/** Told when the lease was lost and a new one replaced it: rewrite what the old one held. */
export type LeaseReplacedListener = (lease: StoreLease) => void;

/** This replica's lease. Create with {@link ReplicaLease.grant}. */
export class ReplicaLease {
  readonly #store: Store;
  readonly #logger: Logger;
  readonly #listeners: LeaseReplacedListener[] = [];
  #lease: StoreLease;
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;
  #closed = false;

  private constructor(store: Store, lease: StoreLease, logger: Logger) {
    this.#store = store;
    this.#lease = lease;
    this.#logger = logger;
  }

  /** Grants the lease and starts renewing it every third of `ttlMs`. */
  static async grant(store: Store, ttlMs: number, logger: Logger): Promise<ReplicaLease> {
    const replicaLease = new ReplicaLease(store, await store.grantLease(ttlMs), logger);
    replicaLease.#timer = setInterval(() => void replicaLease.#renew(), Math.max(50, Math.floor(ttlMs / 3)));
    replicaLease.#timer.unref();
    return replicaLease;
  }

  /** The lease to write held entries under now. */
  get current(): StoreLease {
    return this.#lease;
  }

  onReplaced(listener: LeaseReplacedListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Stops renewing. The lease is left to expire, not revoked: a replica that restarts (or
   * whose sidecars move to another replica) must not take every endpoint down with it.
   */
  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }

  async #renew(): Promise<void> {
    if (this.#renewing || this.#closed) return;
    this.#renewing = true;
    try {
      await this.#lease.keepAlive();
    } catch (err) {
      if ((err as { code?: string }).code !== StoreErrorCode.LEASE_LOST) {
        // Unreachable store: keep trying; etcd extends leases across its own outages.
        this.#logger.warn({ code: (err as { code?: string }).code }, 'cannot renew this replica\'s store lease; retrying');
        return;
      }
      this.#logger.warn('this replica\'s store lease was lost; taking a new one and writing its entries again');
      try {
        this.#lease = await this.#store.grantLease(this.#lease.ttlMs);
        for (const listener of this.#listeners) listener(this.#lease);
      } catch (grantErr) {
        this.#logger.error({ err: grantErr }, 'cannot take a new store lease; retrying');
      }
    } finally {
      this.#renewing = false;
    }
  }
}
