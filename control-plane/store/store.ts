/**
 * The seam between the control plane's domain code and where its state lives. The embedded
 * file store is the default; the etcd store shares this interface so that several replicas
 * share one state. Both pass the same suite (test/control-plane/store-suite.ts).
 *
 * Revisions: the store has one revision, an integer that every write which changes something
 * raises (a put, a delete of a present key, a transaction that applied at least one change:
 * one step each, however many keys it touched). Every replica reading one store sees the same
 * revision for the same state. A delete of a missing key and a transaction whose condition
 * failed change nothing and make no revision.
 */

import type { StoreError } from '../errors.js';

/** A value the store can hold: anything that survives JSON.stringify/parse unchanged. */
export type StoreValue = null | boolean | number | string | StoreValue[] | { [key: string]: StoreValue };

/** One stored key with the revision that last changed it. */
export interface StoreEntry {
  key: string;
  value: StoreValue;
  /** The store revision of the write that last set this key; 0 never appears here. */
  modRevision: number;
  /** Id of the lease that holds the key, if any. */
  lease?: string;
}

/** A change, as a watch delivers it. */
export interface StoreEvent {
  type: 'put' | 'delete';
  key: string;
  /** The new value, on puts only. */
  value?: StoreValue;
  /** The revision of the write; the events of one transaction share it. */
  revision: number;
}

/** One operation of {@link Store.transaction}. */
export type StoreOp =
  | { type: 'put'; key: string; value: StoreValue; lease?: StoreLease }
  | { type: 'delete'; key: string };

/** Options of {@link Store.put}. */
export interface PutOptions {
  /** The key is deleted (with a delete event) when this lease expires or is revoked. */
  lease?: StoreLease;
}

/** Options of {@link Store.transaction}. */
export interface TransactionOptions {
  /**
   * Compare-and-swap: apply only if `key` was last changed at `revision` (its
   * {@link StoreEntry.modRevision}); 0 means the key must not exist.
   */
  ifRevision?: { key: string; revision: number };
}

/** What {@link Store.watch} tells its caller. */
export interface StoreWatchListener {
  /**
   * Changes under the prefix after the watch's revision, in revision order, each exactly once,
   * also across reconnects. The events of one revision are never split across two calls.
   */
  onEvents(events: readonly StoreEvent[]): void;
  /**
   * The revision to resume from is older than the history the store keeps (compacted). The
   * watch has stopped: list again and watch from the revision of that list.
   * `err.code` is `TRELLIS_ERR_STORE_COMPACTED`.
   */
  onRelist(err: StoreError): void;
  /** The watch stopped for another reason (the backend refused it, a stored value is not JSON). */
  onError?(err: StoreError): void;
}

/** A running watch. */
export interface StoreWatch {
  /** The revision of the last change delivered (the watch's start revision before any). */
  readonly revision: number;
  /** Stops delivery; no callback runs after this resolves. */
  close(): Promise<void>;
}

/** A lease: keys put under it go when it expires or is revoked. */
export interface StoreLease {
  /** Stable id, as stored in {@link StoreEntry.lease}. */
  readonly id: string;
  /** The time to live each renewal restores (backends may round it up; etcd to whole seconds). */
  readonly ttlMs: number;
  /**
   * Renews the lease for another `ttlMs`. Holders call it about every `ttlMs / 3`.
   * @throws StoreLeaseLostError `TRELLIS_ERR_STORE_LEASE_LOST` when it already expired or was revoked.
   */
  keepAlive(): Promise<void>;
  /** Ends the lease now, deleting its keys. Resolves also when it had already ended. */
  revoke(): Promise<void>;
}

/**
 * An async key/value store. Keys are `/`-separated paths. Every write resolves once it is
 * durable; values read back are copies, never aliases of what the store keeps.
 *
 * Errors are StoreErrors (./errors.ts): `TRELLIS_ERR_STORE` (a failed or refused operation),
 * `TRELLIS_ERR_STORE_UNAVAILABLE` (the backend cannot be reached; retry later),
 * `TRELLIS_ERR_STORE_COMPACTED`, `TRELLIS_ERR_STORE_CLOSED` (used after close) and
 * `TRELLIS_ERR_STORE_LEASE_LOST`.
 */
export interface Store {
  get(key: string): Promise<StoreValue | undefined>;
  /** The entry of `key` (undefined when missing) and the revision it was read at. */
  getEntry(key: string): Promise<{ revision: number; entry: StoreEntry | undefined }>;
  /** Resolves with the revision of the write. */
  put(key: string, value: StoreValue, options?: PutOptions): Promise<number>;
  /** Resolves to whether the key existed. */
  delete(key: string): Promise<boolean>;
  /** Every entry whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<Array<[key: string, value: StoreValue]>>;
  /** Like {@link list}, with each entry's revisions and the revision the list was read at. */
  listEntries(prefix: string): Promise<{ revision: number; entries: StoreEntry[] }>;
  /**
   * Applies every op or none, as one revision. With `ifRevision` and a mismatch nothing
   * changes and `ok` is false; `revision` is then the revision the check was made at.
   * @throws StoreError `TRELLIS_ERR_STORE` when two ops name the same key.
   */
  transaction(ops: readonly StoreOp[], options?: TransactionOptions): Promise<{ ok: boolean; revision: number }>;
  /**
   * Delivers every change under `prefix` after `fromRevision` (see {@link StoreWatchListener}).
   * Start from the revision a {@link listEntries} returned to miss nothing and see nothing twice.
   * @throws StoreClosedError `TRELLIS_ERR_STORE_CLOSED` when the store is closed.
   */
  watch(prefix: string, fromRevision: number, listener: StoreWatchListener): StoreWatch;
  /** A new lease of `ttlMs` (the backend's minimum applies). */
  grantLease(ttlMs: number): Promise<StoreLease>;
  /** Waits for pending writes, stops watches and lease timers, then refuses further use. */
  close(): Promise<void>;
}
