/**
 * A {@link Store} in etcd (v3 API, through the `etcd3` client), so that several control-plane
 * replicas share one state. Keys live under a prefix (`/trellis/` by default), values are
 * JSON, revisions are etcd's (a key's mod revision, a response header's revision),
 * transactions are etcd transactions comparing a key's mod revision, watches are etcd
 * watches, and leases are etcd leases.
 *
 * Nothing is retried behind the caller's back: when etcd cannot be reached an operation
 * rejects with `TRELLIS_ERR_STORE_UNAVAILABLE` at once (a write may or may not have applied),
 * while watches reconnect by themselves and resume where they were.
 */
import type { IKeyValue, IRequestOp } from 'etcd3';
import { Etcd3 } from 'etcd3';
import { StoreClosedError, StoreError } from './errors.js';
import { etcdClientOptions, prefixRangeEnd, toStoreError, withDeadline } from './etcd-client.js';
import { EtcdWatch } from './etcd-watch.js';
import type { PutOptions, Store, StoreEntry, StoreLease, StoreOp, StoreValue, StoreWatch, StoreWatchListener, TransactionOptions } from './store.js';

/** @default '/trellis/' */
export const DEFAULT_ETCD_PREFIX = '/trellis/';
/** Keys read per range request when listing; a list is still one consistent revision. */
const LIST_PAGE_KEYS = 1000;

/** Options of {@link EtcdStore.connect}. */
export interface EtcdStoreInit {
  /** Client URLs of the etcd members, such as `http://127.0.0.1:2379`. */
  hosts: string[];
  /** Every key of this store lives under it. @default '/trellis/' */
  prefix?: string;
  /** Deadline of each call. @default 5000 */
  callTimeoutMs?: number;
  /** Longest wait between reconnect attempts. @default 1000 */
  maxReconnectDelayMs?: number;
}

/** A {@link Store} in etcd. Create with {@link EtcdStore.connect}. */
export class EtcdStore implements Store {
  readonly #watches = new Set<EtcdWatch>();
  #closed = false;
  readonly #client: Etcd3;
  readonly #callTimeoutMs: number;

  private constructor(
    client: Etcd3,
    /** Every key of this store lives under it. */
    readonly prefix: string,
    callTimeoutMs: number,
  ) {
    this.#client = client;
    this.#callTimeoutMs = callTimeoutMs;
  }

  /**
   * Connects to etcd and checks that it answers.
   * @throws StoreUnavailableError `TRELLIS_ERR_STORE_UNAVAILABLE` when it does not.
   */
  static async connect(init: EtcdStoreInit): Promise<EtcdStore> {
    const callTimeoutMs = init.callTimeoutMs ?? 5000;
    const client = new Etcd3(etcdClientOptions(init.hosts, callTimeoutMs, init.maxReconnectDelayMs ?? 1000));
    const store = new EtcdStore(client, init.prefix ?? DEFAULT_ETCD_PREFIX, callTimeoutMs);
    try {
      await store.#listPage(Buffer.from(store.prefix), 1, undefined);
    } catch (err) {
      client.close();
      throw toStoreError(err, `connect to etcd at ${init.hosts.join(',')}`);
    }
    return store;
  }

  async get(key: string): Promise<StoreValue | undefined> {
    return (await this.getEntry(key)).entry?.value;
  }

  async getEntry(key: string): Promise<{ revision: number; entry: StoreEntry | undefined }> {
    const res = await this.#call(`get ${key}`, () => this.#client.kv.range({ key: this.#fullKey(key) }));
    const kv = res.kvs[0];
    return { revision: Number(res.header.revision), entry: kv === undefined ? undefined : this.#toEntry(kv) };
  }

  async put(key: string, value: StoreValue, options: PutOptions = {}): Promise<number> {
    const res = await this.#call(`put ${key}`, () => this.#client.kv.put(this.#putRequest(key, value, options.lease)));
    return Number(res.header.revision);
  }

  async delete(key: string): Promise<boolean> {
    const res = await this.#call(`delete ${key}`, () => this.#client.kv.deleteRange({ key: this.#fullKey(key) }));
    return res.deleted !== '0';
  }

  async list(prefix: string): Promise<Array<[string, StoreValue]>> {
    const { entries } = await this.listEntries(prefix);
    return entries.map((entry): [string, StoreValue] => [entry.key, entry.value]);
  }

  async listEntries(prefix: string): Promise<{ revision: number; entries: StoreEntry[] }> {
    const entries: StoreEntry[] = [];
    let from = this.#fullKey(prefix);
    let revision: number | undefined;
    for (;;) {
      const page = await this.#call(`list ${prefix}`, () => this.#listPage(from, LIST_PAGE_KEYS, revision, this.#fullKey(prefix)));
      // Later pages read at the first page's revision, so the whole list is one state.
      revision ??= Number(page.header.revision);
      for (const kv of page.kvs) entries.push(this.#toEntry(kv));
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || last === undefined) return { revision, entries };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  async transaction(ops: readonly StoreOp[], options: TransactionOptions = {}): Promise<{ ok: boolean; revision: number }> {
    if (this.#closed) throw this.#closedError();
    if (new Set(ops.map((op) => op.key)).size !== ops.length) throw new StoreError('a transaction names the same key twice');
    const success: IRequestOp[] = ops.map((op) =>
      op.type === 'put' ? { request_put: this.#putRequest(op.key, op.value, op.lease) } : { request_delete_range: { key: this.#fullKey(op.key) } },
    );
    const check = options.ifRevision;
    const compare = check === undefined ? [] : [{ key: this.#fullKey(check.key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: String(check.revision) }];
    const res = await this.#call('transaction', () => this.#client.kv.txn({ compare, success, failure: [] }));
    return { ok: res.succeeded, revision: Number(res.header.revision) };
  }

  watch(prefix: string, fromRevision: number, listener: StoreWatchListener): StoreWatch {
    if (this.#closed) throw this.#closedError();
    const watch = new EtcdWatch({
      client: this.#client,
      storePrefix: this.prefix,
      prefix,
      fromRevision,
      listener,
      callTimeoutMs: this.#callTimeoutMs,
      onEnd: (w) => this.#watches.delete(w),
    });
    this.#watches.add(watch);
    return watch;
  }

  async grantLease(ttlMs: number): Promise<StoreLease> {
    if (this.#closed) throw this.#closedError();
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new StoreError(`a lease needs a positive time to live, not ${ttlMs} ms`);
    // etcd counts whole seconds (and raises anything below its minimum, 1.5 × election timeout).
    const ttlSeconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const lease = this.#client.lease(ttlSeconds, { autoKeepAlive: false });
    const id = await this.#call('grant lease', () => lease.grant());
    return {
      id,
      ttlMs: ttlSeconds * 1000,
      keepAlive: () => this.#call(`keep lease ${id} alive`, () => withDeadline(lease.keepaliveOnce(), this.#callTimeoutMs, 'keepalive')).then(() => undefined),
      revoke: () => this.#call(`revoke lease ${id}`, () => lease.revoke()),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#watches].map((watch) => watch.close()));
    this.#client.close();
  }

  /** Runs an etcd call, refusing it after close and turning its failure into a StoreError. */
  async #call<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#closedError();
    try {
      return await run();
    } catch (err) {
      throw this.#closed ? this.#closedError() : toStoreError(err, what);
    }
  }

  #listPage(from: Buffer, limit: number, revision: number | undefined, prefix = from) {
    return this.#client.kv.range({ key: from, range_end: prefixRangeEnd(prefix), limit, ...(revision === undefined ? {} : { revision: String(revision) }) });
  }

  #putRequest(key: string, value: StoreValue, lease: StoreLease | undefined) {
    return { key: this.#fullKey(key), value: Buffer.from(JSON.stringify(value), 'utf8'), ...(lease === undefined ? {} : { lease: lease.id }) };
  }

  #fullKey(key: string): Buffer {
    return Buffer.from(this.prefix + key, 'utf8');
  }

  #toEntry(kv: IKeyValue): StoreEntry {
    const key = kv.key.toString('utf8').slice(this.prefix.length);
    let value: StoreValue;
    try {
      value = JSON.parse(kv.value.toString('utf8')) as StoreValue;
    } catch (err) {
      throw new StoreError(`etcd key ${this.prefix + key} does not hold JSON: ${(err as Error).message}`, { cause: err });
    }
    const entry: StoreEntry = { key, value, modRevision: Number(kv.mod_revision) };
    if (kv.lease !== '0' && kv.lease !== '') entry.lease = kv.lease;
    return entry;
  }

  #closedError(): StoreClosedError {
    return new StoreClosedError(`etcd store ${this.prefix} is closed`);
  }
}
