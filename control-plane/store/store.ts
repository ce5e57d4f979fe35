/**
 * The seam between the control plane's domain code and where its state lives. The embedded
 * file store is the default; an etcd store shares this interface so replicas can share state.
 */

/** A value the store can hold: anything that survives JSON.stringify/parse unchanged. */
export type StoreValue = null | boolean | number | string | StoreValue[] | { [key: string]: StoreValue };

/**
 * An async key/value store. Keys are `/`-separated paths. Every write resolves once it is
 * durable; values read back are copies, never aliases of what the store keeps.
 */
export interface Store {
  get(key: string): Promise<StoreValue | undefined>;
  put(key: string, value: StoreValue): Promise<void>;
  /** Resolves to whether the key existed. */
  delete(key: string): Promise<boolean>;
  /** Every entry whose key starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<Array<[key: string, value: StoreValue]>>;
  /** Waits for pending writes, then refuses further use. */
  close(): Promise<void>;
}
