/**
 * The file store's state file, its snapshot: its format (version 2: entries with revisions,
 * the store revision, leases; version 1, entries only, is still read), the replay of the
 * journal on top of it, and the clean-up of temporary files that a crash in the middle of a
 * write leaves behind. A state file of before the journal is a snapshot with no journal yet.
 */
import { readdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { DataDirError } from '../errors.js';
import { StoreCorruptError } from './errors.js';
import type { JournalRecord } from './journal.js';
import type { StoreValue } from './store.js';

const STATE_FILE_FORMAT = 2;
const LEGACY_STATE_FILE_FORMAT = 1;

/** A stored key as the file store keeps it. */
export interface FileEntry {
  value: StoreValue;
  modRevision: number;
  lease?: string;
}

/** Everything the state file holds. */
export interface PersistedState {
  revision: number;
  entries: Map<string, FileEntry>;
  /** Lease id → its time to live, so that leased keys get a fresh lease after a restart. */
  leaseTtls: Map<string, number>;
}

export function emptyState(): PersistedState {
  return { revision: 0, entries: new Map(), leaseTtls: new Map() };
}

export function serializeState(state: PersistedState): string {
  return JSON.stringify({
    format: STATE_FILE_FORMAT,
    revision: state.revision,
    entries: Object.fromEntries(state.entries),
    leases: Object.fromEntries([...state.leaseTtls].map(([id, ttlMs]) => [id, { ttlMs }])),
  });
}

/**
 * Reads a state file's text.
 * @throws DataDirError naming `path` when it is not a state file of a known format.
 */
export function parseState(path: string, text: string): PersistedState {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new DataDirError(path, `corrupt state file: ${(err as Error).message}`, { cause: err });
  }
  if (!isRecord(parsed) || (parsed.format !== STATE_FILE_FORMAT && parsed.format !== LEGACY_STATE_FILE_FORMAT)) {
    throw new DataDirError(path, `not a state file of format ${LEGACY_STATE_FILE_FORMAT} or ${STATE_FILE_FORMAT}`);
  }
  if (!isRecord(parsed.entries)) throw new DataDirError(path, 'corrupt state file: "entries" is not an object');
  if (parsed.format === LEGACY_STATE_FILE_FORMAT) {
    // Format 1 kept no revisions: everything it holds was written at revision 1.
    const entries = new Map(Object.entries(parsed.entries as Record<string, StoreValue>).map(([key, value]): [string, FileEntry] => [key, { value, modRevision: 1 }]));
    return { revision: entries.size > 0 ? 1 : 0, entries, leaseTtls: new Map() };
  }
  const revision = parsed.revision;
  if (!isRevision(revision)) throw new DataDirError(path, 'corrupt state file: "revision" is not a revision');
  const entries = new Map<string, FileEntry>();
  for (const [key, entry] of Object.entries(parsed.entries)) {
    if (!isRecord(entry) || !isRevision(entry.modRevision) || entry.modRevision > revision || !('value' in entry)) {
      throw new DataDirError(path, `corrupt state file: entry ${JSON.stringify(key)} is malformed`);
    }
    const { value, modRevision, lease } = entry as { value: StoreValue; modRevision: number; lease?: unknown };
    entries.set(key, typeof lease === 'string' ? { value, modRevision, lease } : { value, modRevision });
  }
  const leaseTtls = new Map<string, number>();
  for (const [id, lease] of Object.entries(isRecord(parsed.leases) ? parsed.leases : {})) {
    if (!isRecord(lease) || typeof lease.ttlMs !== 'number' || !(lease.ttlMs > 0)) {
      throw new DataDirError(path, `corrupt state file: lease ${JSON.stringify(id)} is malformed`);
    }
    leaseTtls.set(id, lease.ttlMs);
  }
  return { revision, entries, leaseTtls };
}

/**
 * Applies journal records to the snapshot `state`, in place. Transactions at or below the
 * state's revision are already in it (a compaction wrote the snapshot, then stopped before it
 * replaced the journal) and are skipped; the others must follow it without a gap.
 * @throws StoreCorruptError naming `path` when the journal starts after the snapshot or skips a revision.
 */
export function replayJournal(state: PersistedState, path: string, base: number, records: ReadonlyArray<{ offset: number; record: JournalRecord }>): void {
  if (base > state.revision) {
    throw new StoreCorruptError(path, 0, `the journal follows revision ${base}, but the snapshot holds only revision ${state.revision}`);
  }
  for (const { offset, record } of records) {
    for (const txn of record.txns) {
      if (txn.revision <= state.revision) continue;
      if (txn.revision !== state.revision + 1) throw new StoreCorruptError(path, offset, `revision ${txn.revision} follows revision ${state.revision}`);
      for (const op of txn.ops) {
        if ('delete' in op) {
          state.entries.delete(op.delete);
          continue;
        }
        const entry: FileEntry = { value: op.value, modRevision: txn.revision };
        if (op.lease !== undefined) {
          entry.lease = op.lease;
          const ttlMs = record.leases[op.lease];
          if (ttlMs !== undefined) state.leaseTtls.set(op.lease, ttlMs);
        }
        state.entries.set(op.put, entry);
      }
      state.revision = txn.revision;
    }
  }
}

/**
 * Removes the temporary files of writes that a crash interrupted (`<name>.tmp-*`, see
 * writeFileAtomic). Their contents were never acknowledged, so nothing is lost.
 */
export async function removeInterruptedWrites(path: string): Promise<void> {
  const prefix = `${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch (err) {
    // A data directory that does not exist yet holds no interrupted writes either.
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new DataDirError(dirname(path), `cannot list: ${(err as Error).message}`, { cause: err });
  }
  for (const name of names) {
    if (name.startsWith(prefix)) await rm(join(dirname(path), name), { force: true });
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRevision(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}
