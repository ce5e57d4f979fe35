/**
 * Picks one replica of those sharing a store to run the duties that must run once (sweeping
 * entries nobody holds, pruning expired tokens, keeping routes in line with gateways). The
 * leader holds `election/leader` under a store lease it renews; the others try to create the
 * key (a compare-and-swap on "does not exist") every third of the lease time. A leader that
 * dies without a word is replaced one lease time later; one that closes hands over at once.
 */
import type { Logger } from 'pino';
import type { Store, StoreLease } from './store/store.js';

const LEADER_KEY = 'election/leader';

/** Options of {@link LeaderElection}. */
export interface LeaderElectionInit {
  store: Store;
  /** Names this replica in the leader key (for operators). */
  replicaId: string;
  ttlMs: number;
  logger: Logger;
}

/** This replica's part in the election. */
export class LeaderElection {
  readonly #init: LeaderElectionInit;
  readonly #listeners: Array<(leader: boolean) => void> = [];
  #lease: StoreLease | undefined;
  #timer: NodeJS.Timeout | undefined;
  #busy = false;
  #closed = false;

  constructor(init: LeaderElectionInit) {
    this.#init = init;
  }

  get isLeader(): boolean {
    return this.#lease !== undefined;
  }

  /** Called with `true` when this replica becomes leader and `false` when it stops being one. */
  onChange(listener: (leader: boolean) => void): void {
    this.#listeners.push(listener);
  }

  start(): void {
    this.#timer = setInterval(() => void this.#tick(), Math.max(50, Math.floor(this.#init.ttlMs / 3)));
    this.#timer.unref();
    void this.#tick();
  }

  /** Stops campaigning; a leader gives the key up so that another replica takes over at once. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    const lease = this.#lease;
    this.#lease = undefined;
    await lease?.revoke().catch(() => undefined);
  }

  async #tick(): Promise<void> {
    if (this.#busy || this.#closed) return;
    this.#busy = true;
    try {
      if (this.#lease !== undefined) await this.#renew(this.#lease);
      else await this.#campaign();
    } finally {
      this.#busy = false;
    }
  }

  async #renew(lease: StoreLease): Promise<void> {
    try {
      await lease.keepAlive();
    } catch (err) {
      // Whether the lease is lost or the store unreachable, another replica may lead by now.
      this.#init.logger.warn({ code: (err as { code?: string }).code }, 'lost the leadership of the control-plane replicas');
      this.#lease = undefined;
      this.#notify(false);
    }
  }

  async #campaign(): Promise<void> {
    const { store, replicaId, ttlMs, logger } = this.#init;
    try {
      if ((await store.getEntry(LEADER_KEY)).entry !== undefined) return;
      const lease = await store.grantLease(ttlMs);
      const result = await store.transaction([{ type: 'put', key: LEADER_KEY, value: { replicaId }, lease }], { ifRevision: { key: LEADER_KEY, revision: 0 } });
      if (!result.ok || this.#closed) {
        await lease.revoke();
        return;
      }
      this.#lease = lease;
      logger.info({ replicaId }, 'this replica leads the control plane');
      this.#notify(true);
    } catch (err) {
      logger.debug({ err }, 'cannot campaign for the leadership now');
    }
  }

  #notify(leader: boolean): void {
    for (const listener of this.#listeners) listener(leader);
  }
}
