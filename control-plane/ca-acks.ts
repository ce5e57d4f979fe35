/**
 * Whether every sidecar and gateway holds a trust bundle: a rotation's new root signs only
 * once they all do. Alone, a control plane asks its own sessions. With replicas, each one
 * writes under `ca-acks/<replica>` the lowest config version its sessions acked, held by its
 * store lease so that the entry goes with a replica that dies; the leader reads them all.
 */
import type { Logger } from 'pino';
import { isDeepStrictEqual } from 'node:util';
import type { Store, StoreLease } from './store/store.js';

const ACKS_PREFIX = 'ca-acks/';
/** @default 500 — how often a replica writes its sessions' lowest acked version when it changed. */
const DEFAULT_REPORT_INTERVAL_MS = 500;

/** The acks a rotation waits for. */
export interface BundleAcks {
  /** Whether every session (of every replica) acked config version `version` or a later one. */
  allAcked(version: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The acks of this control plane's sessions. */
export class LocalBundleAcks implements BundleAcks {
  readonly #acked: () => Iterable<number>;

  constructor(acked: () => Iterable<number>) {
    this.#acked = acked;
  }

  allAcked(version: number): Promise<boolean> {
    return Promise.resolve(lowest(this.#acked()) >= version);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Options of {@link SharedBundleAcks}. */
export interface SharedBundleAcksInit {
  store: Store;
  replicaId: string;
  /** The lease this replica's entry is held by (the replica's lease, which may be replaced). */
  lease: () => StoreLease;
  /** The config version each of this replica's sessions acked. */
  acked: () => Iterable<number>;
  logger: Logger;
  /** @default 500 */
  reportIntervalMs?: number;
}

/** The acks of every replica's sessions. Call {@link start}. */
export class SharedBundleAcks implements BundleAcks {
  readonly #init: SharedBundleAcksInit;
  readonly #key: string;
  readonly #local: LocalBundleAcks;
  #timer: NodeJS.Timeout | undefined;
  #written: { lowestAcked: number | null; lease: string } | undefined;
  #writing = false;

  constructor(init: SharedBundleAcksInit) {
    this.#init = init;
    this.#key = ACKS_PREFIX + init.replicaId;
    this.#local = new LocalBundleAcks(init.acked);
  }

  /** Writes this replica's entry now and whenever it changes. */
  async start(): Promise<void> {
    await this.#report();
    this.#timer = setInterval(() => void this.#report(), this.#init.reportIntervalMs ?? DEFAULT_REPORT_INTERVAL_MS);
    this.#timer.unref();
  }

  async allAcked(version: number): Promise<boolean> {
    if (!(await this.#local.allAcked(version))) return false;
    for (const [key, value] of await this.#init.store.list(ACKS_PREFIX)) {
      if (key === this.#key) continue;
      const lowestAcked = (value as { lowestAcked?: unknown } | null)?.lowestAcked;
      // null: a replica without sessions; anything unreadable counts as not acked.
      if (lowestAcked !== null && (typeof lowestAcked !== 'number' || lowestAcked < version)) return false;
    }
    return true;
  }

  /** Stops reporting and removes the entry: this replica's sessions go elsewhere. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#init.store.delete(this.#key).catch(() => undefined);
  }

  async #report(): Promise<void> {
    if (this.#writing) return;
    this.#writing = true;
    try {
      const value = lowest(this.#init.acked());
      const entry = { lowestAcked: value === Infinity ? null : value, lease: this.#init.lease().id };
      if (isDeepStrictEqual(entry, this.#written)) return;
      await this.#init.store.put(this.#key, { lowestAcked: entry.lowestAcked }, { lease: this.#init.lease() });
      this.#written = entry;
    } catch (err) {
      this.#init.logger.warn({ code: (err as { code?: string }).code }, 'cannot write this replica\'s trust bundle acks; retrying');
    } finally {
      this.#writing = false;
    }
  }
}

/** The lowest of `versions`; Infinity when there is none. */
function lowest(versions: Iterable<number>): number {
  let min = Infinity;
  for (const version of versions) min = Math.min(min, version);
  return min;
}
