/**
 * The embedded store: every entry in memory, persisted as one JSON file. Writes are coalesced
 * (one file write in flight, at most one queued behind it) so that a burst of thousands of
 * changes, such as every sidecar re-registering after a restart, costs a few file writes.
 */
import { join } from 'node:path';
import { DataDirError, StoreError } from '../errors.js';
import { readFileIfExists, writeFileAtomic } from '../files.js';
import type { Store, StoreValue } from './store.js';

/** Name of the state file inside the data directory. */
export const STATE_FILE_NAME = 'state.json';
const STATE_FILE_FORMAT = 1;
const STATE_FILE_MODE = 0o600;

interface Waiter {
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A {@link Store} kept in memory and persisted to `<dataDir>/state.json`. */
export class FileStore implements Store {
  private readonly entries: Map<string, StoreValue>;
  /** Callers waiting for a write that has not started yet. */
  private waiters: Waiter[] = [];
  private writeInFlight: Promise<void> | undefined;
  private closed = false;

  private constructor(
    /** Path of the state file. */
    readonly path: string,
    entries: Map<string, StoreValue>,
  ) {
    this.entries = entries;
  }

  /**
   * Loads the state file of `dataDir`, or starts empty when there is none.
   * @throws DataDirError naming the file when it cannot be read or is not a state file.
   */
  static async open(dataDir: string): Promise<FileStore> {
    const path = join(dataDir, STATE_FILE_NAME);
    const text = await readFileIfExists(path);
    if (text === undefined) return new FileStore(path, new Map());
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new DataDirError(path, `corrupt state file: ${(err as Error).message}`, { cause: err });
    }
    const state = parsed as { format?: unknown; entries?: unknown };
    if (typeof parsed !== 'object' || parsed === null || state.format !== STATE_FILE_FORMAT) {
      throw new DataDirError(path, `not a state file of format ${STATE_FILE_FORMAT}`);
    }
    if (typeof state.entries !== 'object' || state.entries === null || Array.isArray(state.entries)) {
      throw new DataDirError(path, 'corrupt state file: "entries" is not an object');
    }
    return new FileStore(path, new Map(Object.entries(state.entries as Record<string, StoreValue>)));
  }

  get(key: string): Promise<StoreValue | undefined> {
    if (this.closed) return this.rejectClosed();
    const value = this.entries.get(key);
    return Promise.resolve(value === undefined ? undefined : structuredClone(value));
  }

  put(key: string, value: StoreValue): Promise<void> {
    if (this.closed) return this.rejectClosed();
    this.entries.set(key, structuredClone(value));
    return this.persist();
  }

  delete(key: string): Promise<boolean> {
    if (this.closed) return this.rejectClosed();
    if (!this.entries.delete(key)) return Promise.resolve(false);
    return this.persist().then(() => true);
  }

  list(prefix: string): Promise<Array<[string, StoreValue]>> {
    if (this.closed) return this.rejectClosed();
    const found: Array<[string, StoreValue]> = [];
    for (const [key, value] of this.entries) {
      if (key.startsWith(prefix)) found.push([key, structuredClone(value)]);
    }
    found.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return Promise.resolve(found);
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.writeInFlight !== undefined) await this.writeInFlight.catch(() => undefined);
  }

  /** Resolves once a write that includes every change made so far is durable. */
  private persist(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      if (this.writeInFlight === undefined) this.startWrite();
    });
  }

  private startWrite(): void {
    const waiters = this.waiters;
    this.waiters = [];
    // Serialise now: changes made while this write is in flight belong to the next one.
    const contents = JSON.stringify({ format: STATE_FILE_FORMAT, entries: Object.fromEntries(this.entries) });
    this.writeInFlight = writeFileAtomic(this.path, contents, STATE_FILE_MODE)
      .then(
        () => waiters.forEach((w) => w.resolve()),
        (err: unknown) => {
          const failure = new StoreError(`cannot persist ${this.path}: ${(err as Error).message}`, { cause: err });
          waiters.forEach((w) => w.reject(failure));
        },
      )
      .finally(() => {
        this.writeInFlight = undefined;
        if (this.waiters.length > 0) this.startWrite();
      });
  }

  private rejectClosed(): Promise<never> {
    return Promise.reject(new StoreError(`store ${this.path} is closed`));
  }
}
