/**
 * The embedded store: every entry in memory, persisted as a snapshot and a journal
 * (./durable-state.ts). A write appends the transactions it carries to the journal and fsyncs
 * it; writes are coalesced (one append in flight, the changes made meanwhile in the next) so
 * that a burst of thousands of changes, such as every sidecar re-registering after a restart,
 * costs a few appends. A write is acknowledged once its record is durable: after a kill -9
 * the store reopens at an acknowledged state or a later one.
 *
 * Watches are in-process and see a change once it is durable, never before. Leases are
 * in-process timers; the files record which keys each lease holds and its time to live, and
 * after a restart every such lease starts afresh with a full time to live — the registry's
 * rule that "after a control-plane restart every stored endpoint gets a fresh lease": owners
 * that come back in time (and put their key again) keep it, the others' keys go. With
 * `holdRestoredLeases` that time starts only at {@link FileStore.startRestoredLeases}, once
 * the owners can come back at all.
 */
import { randomBytes } from 'node:crypto';
import type { DurableStateInit, DurableStateStats, Snapshot } from './durable-state.js';
import { DurableState } from './durable-state.js';
import { StoreClosedError, StoreError, StoreLeaseLostError } from './errors.js';
import type { JournalOp, JournalTxn } from './journal.js';
import { encodeRecord } from './journal.js';
import type { FileEntry, PersistedState } from './state-file.js';
import { serializeState } from './state-file.js';
import type { PutOptions, Store, StoreEntry, StoreEvent, StoreLease, StoreOp, StoreValue, StoreWatch, StoreWatchListener, TransactionOptions } from './store.js';
import { WatchHub } from './watch-hub.js';

export { JOURNAL_FILE_NAME, STATE_FILE_NAME } from './durable-state.js';

/** Options of {@link FileStore.open}. */
export interface FileStoreInit extends DurableStateInit {
  /** Past events kept for watches that start behind; older starts are told to relist. @default 10 000 */
  watchHistoryEvents?: number;
  /**
   * Leases restored from the files hold their keys without a running clock until
   * {@link FileStore.startRestoredLeases}: a control plane opens its store seconds before it
   * serves the sessions that renew them (more on a loaded machine). @default false
   */
  holdRestoredLeases?: boolean;
}

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

interface LiveLease {
  ttlMs: number;
  /** Undefined while a restored lease waits for {@link FileStore.startRestoredLeases}. */
  timer: NodeJS.Timeout | undefined;
  keys: Set<string>;
}

/** A {@link Store} kept in memory and persisted to `<dataDir>/state.json` and `<dataDir>/state.journal`. */
export class FileStore implements Store {
  readonly #entries: Map<string, FileEntry>;
  #revision: number;
  readonly #leases = new Map<string, LiveLease>();
  /** Restored leases whose clock has not started (`holdRestoredLeases`). */
  readonly #heldLeases = new Set<string>();
  readonly #hub: WatchHub;
  /** Changes made since the last write started; watches get them once a write holding them is durable. */
  #unwrittenEvents: StoreEvent[] = [];
  /** The same changes as the journal records them, and the time to live of the leases they name. */
  #unwrittenTxns: JournalTxn[] = [];
  #unwrittenLeaseTtls = new Map<string, number>();
  /** Callers waiting for a write that has not started yet. */
  #waiters: Waiter[] = [];
  #writeInFlight: Promise<void> | undefined;
  #closed = false;
  readonly #durable: DurableState;

  private constructor(
    durable: DurableState,
    state: PersistedState,
    init: FileStoreInit,
  ) {
    this.#durable = durable;
    this.#entries = state.entries;
    this.#revision = state.revision;
    this.#hub = new WatchHub(state.revision, init.watchHistoryEvents);
    for (const [key, entry] of this.#entries) {
      if (entry.lease === undefined) continue;
      const ttlMs = state.leaseTtls.get(entry.lease);
      if (ttlMs === undefined) {
        delete entry.lease;
        continue;
      }
      if (!this.#leases.has(entry.lease)) {
        if (init.holdRestoredLeases === true) {
          this.#leases.set(entry.lease, { ttlMs, timer: undefined, keys: new Set() });
          this.#heldLeases.add(entry.lease);
        } else this.#startLease(entry.lease, ttlMs);
      }
      this.#leases.get(entry.lease)?.keys.add(key);
    }
  }

  /**
   * Loads the snapshot and journal of `dataDir` (or starts empty when there are none), cutting
   * off a torn last record, and removes what interrupted writes left behind. A state file of
   * before the journal opens as the snapshot.
   * @throws DataDirError naming the file when it cannot be read or is not a state file.
   * @throws StoreCorruptError `TRELLIS_ERR_STORE_CORRUPT` when the journal is damaged before its last record.
   */
  static async open(dataDir: string, init: FileStoreInit = {}): Promise<FileStore> {
    const { durable, state } = await DurableState.open(dataDir, init);
    return new FileStore(durable, state, init);
  }

  /**
   * Starts the clock of every lease restored from the files and held since the open
   * (`holdRestoredLeases`): each ends after its time to live plus `extraMs`, unless its keys
   * are put again under other leases meanwhile. Leases already running are left alone.
   */
  startRestoredLeases(extraMs = 0): void {
    for (const id of this.#heldLeases) {
      const lease = this.#leases.get(id);
      if (lease !== undefined) this.#startLease(id, lease.ttlMs + extraMs, lease.keys, lease.ttlMs);
    }
    this.#heldLeases.clear();
  }

  /** Path of the snapshot (the state file). */
  get path(): string {
    return this.#durable.path;
  }

  /** Sizes of the journal and compactions so far. */
  get stats(): DurableStateStats {
    return this.#durable.stats;
  }

  /**
   * Writes a snapshot of the state now and starts a fresh journal, without waiting for the
   * journal to reach its bound; writes go on meanwhile.
   * @throws DataDirError naming the file that could not be written.
   */
  compact(): Promise<void> {
    if (this.#closed) return this.#rejectClosed();
    return this.#durable.compact(() => this.#snapshot());
  }

  get(key: string): Promise<StoreValue | undefined> {
    if (this.#closed) return this.#rejectClosed();
    const entry = this.#entries.get(key);
    return Promise.resolve(entry === undefined ? undefined : structuredClone(entry.value));
  }

  getEntry(key: string): Promise<{ revision: number; entry: StoreEntry | undefined }> {
    if (this.#closed) return this.#rejectClosed();
    const entry = this.#entries.get(key);
    return Promise.resolve({ revision: this.#revision, entry: entry === undefined ? undefined : toStoreEntry(key, entry) });
  }

  put(key: string, value: StoreValue, options: PutOptions = {}): Promise<number> {
    return this.transaction([{ type: 'put', key, value, ...options }]).then((result) => result.revision);
  }

  delete(key: string): Promise<boolean> {
    if (this.#closed) return this.#rejectClosed();
    if (!this.#entries.has(key)) return Promise.resolve(false);
    return this.transaction([{ type: 'delete', key }]).then(() => true);
  }

  list(prefix: string): Promise<Array<[string, StoreValue]>> {
    return this.listEntries(prefix).then(({ entries }) => entries.map((entry): [string, StoreValue] => [entry.key, entry.value]));
  }

  listEntries(prefix: string): Promise<{ revision: number; entries: StoreEntry[] }> {
    if (this.#closed) return this.#rejectClosed();
    const found: StoreEntry[] = [];
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) found.push(toStoreEntry(key, entry));
    found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return Promise.resolve({ revision: this.#revision, entries: found });
  }

  transaction(ops: readonly StoreOp[], options: TransactionOptions = {}): Promise<{ ok: boolean; revision: number }> {
    if (this.#closed) return this.#rejectClosed();
    const keys = new Set(ops.map((op) => op.key));
    if (keys.size !== ops.length) return Promise.reject(new StoreError('a transaction names the same key twice'));
    for (const op of ops) {
      if (op.type === 'put' && op.lease !== undefined && !this.#leases.has(op.lease.id)) {
        return Promise.reject(new StoreLeaseLostError(`lease ${op.lease.id} expired or was revoked`));
      }
    }
    const check = options.ifRevision;
    if (check !== undefined && (this.#entries.get(check.key)?.modRevision ?? 0) !== check.revision) {
      return Promise.resolve({ ok: false, revision: this.#revision });
    }
    const revision = this.#apply(ops);
    return revision === undefined ? Promise.resolve({ ok: true, revision: this.#revision }) : this.#persist().then(() => ({ ok: true, revision }));
  }

  watch(prefix: string, fromRevision: number, listener: StoreWatchListener): StoreWatch {
    if (this.#closed) throw new StoreClosedError(`store ${this.path} is closed`);
    return this.#hub.watch(prefix, fromRevision, listener);
  }

  grantLease(ttlMs: number): Promise<StoreLease> {
    if (this.#closed) return this.#rejectClosed();
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) return Promise.reject(new StoreError(`a lease needs a positive time to live, not ${ttlMs} ms`));
    const id = randomBytes(8).toString('hex');
    this.#startLease(id, ttlMs);
    const lease: StoreLease = {
      id,
      ttlMs,
      keepAlive: () => {
        if (this.#closed) return this.#rejectClosed();
        const live = this.#leases.get(id);
        if (live === undefined) return Promise.reject(new StoreLeaseLostError(`lease ${id} expired or was revoked`));
        live.timer?.refresh();
        return Promise.resolve();
      },
      revoke: () => (this.#closed ? this.#rejectClosed() : this.#endLease(id)),
    };
    return Promise.resolve(lease);
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const lease of this.#leases.values()) clearTimeout(lease.timer);
    this.#hub.closeAll();
    while (this.#writeInFlight !== undefined) await this.#writeInFlight.catch(() => undefined);
    await this.#durable.close();
  }

  /** Applies `ops` in memory as one revision; returns it, or undefined when nothing changed. */
  #apply(ops: readonly StoreOp[]): number | undefined {
    const revision = this.#revision + 1;
    const events: StoreEvent[] = [];
    const journalOps: JournalOp[] = [];
    for (const op of ops) {
      const previous = this.#entries.get(op.key);
      if (previous?.lease !== undefined) this.#leases.get(previous.lease)?.keys.delete(op.key);
      if (op.type === 'delete') {
        if (previous === undefined) continue;
        this.#entries.delete(op.key);
        events.push({ type: 'delete', key: op.key, revision });
        journalOps.push({ delete: op.key });
        continue;
      }
      const value = structuredClone(op.value);
      const entry: FileEntry = { value, modRevision: revision };
      if (op.lease !== undefined) {
        entry.lease = op.lease.id;
        this.#leases.get(op.lease.id)?.keys.add(op.key);
        this.#unwrittenLeaseTtls.set(op.lease.id, op.lease.ttlMs);
        journalOps.push({ put: op.key, value, lease: op.lease.id });
      } else {
        journalOps.push({ put: op.key, value });
      }
      this.#entries.set(op.key, entry);
      events.push({ type: 'put', key: op.key, value, revision });
    }
    if (events.length === 0) return undefined;
    this.#revision = revision;
    this.#unwrittenEvents.push(...events);
    this.#unwrittenTxns.push({ revision, ops: journalOps });
    return revision;
  }

  /** Runs lease `id` for `runMs`; `ttlMs` is what the files record of it (and a keepAlive renews for). */
  #startLease(id: string, runMs: number, keys = new Set<string>(), ttlMs = runMs): void {
    const timer = setTimeout(() => {
      this.#endLease(id).catch(() => undefined);
    }, runMs);
    // Lease timers must not keep a closing process alive.
    timer.unref();
    this.#leases.set(id, { ttlMs, timer, keys });
  }

  /** Ends lease `id` (expired or revoked), deleting its keys as one revision. */
  #endLease(id: string): Promise<void> {
    const lease = this.#leases.get(id);
    if (lease === undefined) return Promise.resolve();
    clearTimeout(lease.timer);
    this.#leases.delete(id);
    // A failed write leaves the deletes in memory; the next write persists them.
    return this.#apply([...lease.keys].map((key) => ({ type: 'delete', key }))) === undefined ? Promise.resolve() : this.#persist();
  }

  /** Resolves once a write that includes every change made so far is durable. */
  #persist(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      if (this.#writeInFlight === undefined) this.#startWrite();
    });
  }

  #startWrite(): void {
    const waiters = this.#waiters;
    const events = this.#unwrittenEvents;
    const txns = this.#unwrittenTxns;
    const leaseTtls = this.#unwrittenLeaseTtls;
    this.#waiters = [];
    this.#unwrittenEvents = [];
    this.#unwrittenTxns = [];
    this.#unwrittenLeaseTtls = new Map();
    // Encode now: changes made while this write is in flight belong to the next one.
    const line = encodeRecord({ txns, leases: Object.fromEntries(leaseTtls) });
    this.#writeInFlight = this.#durable
      .append(line, () => this.#snapshot())
      .then(
        () => {
          this.#hub.publish(events);
          waiters.forEach((w) => w.resolve());
        },
        (err: unknown) => {
          // The changes stay in memory, so the next write carries them and their events.
          this.#unwrittenEvents = [...events, ...this.#unwrittenEvents];
          this.#unwrittenTxns = [...txns, ...this.#unwrittenTxns];
          this.#unwrittenLeaseTtls = new Map([...leaseTtls, ...this.#unwrittenLeaseTtls]);
          const failure = new StoreError(`cannot persist ${(err as Error).message}`, { cause: err });
          waiters.forEach((w) => w.reject(failure));
        },
      )
      .finally(() => {
        this.#writeInFlight = undefined;
        if (this.#waiters.length > 0) this.#startWrite();
      });
  }

  /** The whole state now, for a compaction. */
  #snapshot(): Snapshot {
    const leaseTtls = new Map([...this.#leases].map(([id, lease]) => [id, lease.ttlMs]));
    return { text: serializeState({ revision: this.#revision, entries: this.#entries, leaseTtls }), revision: this.#revision };
  }

  #rejectClosed(): Promise<never> {
    return Promise.reject(new StoreClosedError(`store ${this.path} is closed`));
  }
}

function toStoreEntry(key: string, entry: FileEntry): StoreEntry {
  const found: StoreEntry = { key, value: structuredClone(entry.value), modRevision: entry.modRevision };
  if (entry.lease !== undefined) found.lease = entry.lease;
  return found;
}
