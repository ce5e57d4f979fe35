/**
 * Where the file store's state lives on disk: a snapshot (`state.json`, the whole state at one
 * revision) and a journal (`state.journal`, every durable write since, one record each).
 * A write appends one record and fsyncs it: its cost follows the size of the change, not of
 * the state. When the journal has grown past a bound, a compaction writes a new snapshot and
 * starts a fresh journal; appends go on meanwhile, except during the short journal swap.
 *
 * Crash safety, step by step: the snapshot is written through a temporary file, fsync, rename
 * and directory fsync, and only then is the journal replaced (the same way) by one that
 * follows it and carries the records appended meanwhile. A crash between the two leaves the
 * new snapshot beside the old journal, whose records up to the snapshot's revision the replay
 * skips.
 */
import { join } from 'node:path';
import { readFileIfExists, writeFileAtomic } from '../files.js';
import { JournalFile } from './journal-file.js';
import type { PersistedState } from './state-file.js';
import { emptyState, parseState, removeInterruptedWrites, replayJournal } from './state-file.js';

/** Name of the snapshot inside the data directory (also the whole state file of before the journal). */
export const STATE_FILE_NAME = 'state.json';
/** Name of the journal inside the data directory. */
export const JOURNAL_FILE_NAME = 'state.journal';
const FILE_MODE = 0o600;
/** @see DurableStateInit.compactJournalBytes */
export const DEFAULT_COMPACT_JOURNAL_BYTES = 16 * 1024 * 1024;
/** @see DurableStateInit.compactJournalRecords */
export const DEFAULT_COMPACT_JOURNAL_RECORDS = 100_000;

/** When to compact. */
export interface DurableStateInit {
  /**
   * Compact once the journal holds this many bytes, or as many as the last snapshot if that
   * is more (so that snapshots cost at most as much writing as the journal they replace).
   * @default 16 MiB
   */
  compactJournalBytes?: number;
  /** Compact once the journal holds this many records (each costs a parse at open). @default 100 000 */
  compactJournalRecords?: number;
}

/** The whole state, serialised, and the revision it is at. */
export interface Snapshot {
  text: string;
  revision: number;
}

/** What the store has written, seen from outside (for tests and operators). */
export interface DurableStateStats {
  journalBytes: number;
  journalRecords: number;
  /** Compactions completed since open. */
  compactions: number;
  /** Bytes of a torn last record cut off at open. */
  tornBytesAtOpen: number;
}

/** The snapshot and journal of one data directory. Create with {@link DurableState.open}. */
export class DurableState {
  #journal: JournalFile | undefined;
  /** Appends and journal swaps, one at a time. */
  #exclusive: Promise<void> = Promise.resolve();
  #compacting: Promise<void> | undefined;
  /** A failed compaction is tried again once the journal has grown by another bound. */
  #compactAfterBytes: number;
  #snapshotBytes: number;
  #compactions = 0;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #journalPath: string;
  /** Revision of the snapshot on disk: a journal created from scratch follows it. */
  #snapshotRevision: number;
  readonly #tornBytesAtOpen: number;

  private constructor(
    /** Path of the snapshot. */
    readonly path: string,
    journalPath: string,
    snapshotRevision: number,
    snapshotBytes: number,
    loaded: JournalFile | undefined,
    tornBytesAtOpen: number,
    init: DurableStateInit,
  ) {
    this.#journalPath = journalPath;
    this.#snapshotRevision = snapshotRevision;
    this.#tornBytesAtOpen = tornBytesAtOpen;
    this.#journal = loaded;
    this.#snapshotBytes = snapshotBytes;
    this.#maxBytes = init.compactJournalBytes ?? DEFAULT_COMPACT_JOURNAL_BYTES;
    this.#maxRecords = init.compactJournalRecords ?? DEFAULT_COMPACT_JOURNAL_RECORDS;
    this.#compactAfterBytes = Math.max(this.#maxBytes, snapshotBytes);
  }

  /**
   * Loads the snapshot of `dataDir` and replays its journal (empty when there is neither),
   * cutting off a torn last record and removing what interrupted writes left behind.
   * @throws DataDirError naming the file when one cannot be read or is not a state file.
   * @throws StoreCorruptError when the journal is damaged before its last record, or does not follow the snapshot.
   */
  static async open(dataDir: string, init: DurableStateInit = {}): Promise<{ durable: DurableState; state: PersistedState }> {
    const path = join(dataDir, STATE_FILE_NAME);
    const journalPath = join(dataDir, JOURNAL_FILE_NAME);
    await removeInterruptedWrites(path);
    await removeInterruptedWrites(journalPath);
    const text = await readFileIfExists(path);
    const state = text === undefined ? emptyState() : parseState(path, text);
    const snapshotRevision = state.revision;
    const loaded = await JournalFile.load(journalPath, FILE_MODE);
    if (loaded !== undefined) {
      try {
        replayJournal(state, journalPath, loaded.base, loaded.records);
      } catch (err) {
        await loaded.file.close();
        throw err;
      }
    }
    const durable = new DurableState(path, journalPath, snapshotRevision, text?.length ?? 0, loaded?.file, loaded?.tornBytes ?? 0, init);
    return { durable, state };
  }

  get stats(): DurableStateStats {
    return {
      journalBytes: this.#journal?.bytes ?? 0,
      journalRecords: this.#journal?.records ?? 0,
      compactions: this.#compactions,
      tornBytesAtOpen: this.#tornBytesAtOpen,
    };
  }

  /**
   * Appends one encoded record and resolves once it is durable; starts a compaction from
   * `takeSnapshot()` (the state now, at or after this record) when the journal is due for one.
   * The caller appends one record at a time, in revision order.
   * @throws DataDirError naming the file; nothing of the record then counts.
   */
  append(line: Buffer, takeSnapshot: () => Snapshot): Promise<void> {
    return this.#runExclusive(async () => {
      this.#journal ??= await JournalFile.create(this.#journalPath, this.#snapshotRevision, FILE_MODE);
      await this.#journal.append(line);
      if (this.#compacting === undefined && (this.#journal.bytes >= this.#compactAfterBytes || this.#journal.records >= this.#maxRecords)) {
        // Its failure is handled in startCompaction: the write itself is durable.
        void this.#startCompaction(takeSnapshot());
      }
    });
  }

  /**
   * Compacts now (after any compaction under way), from `takeSnapshot()`; resolves when done.
   * @throws DataDirError naming the file that could not be written; the files on disk still agree.
   */
  async compact(takeSnapshot: () => Snapshot): Promise<void> {
    let mine: Promise<void> | undefined;
    while (mine === undefined) {
      await this.#compacting;
      await this.#runExclusive(async () => {
        if (this.#compacting !== undefined) return;
        this.#journal ??= await JournalFile.create(this.#journalPath, this.#snapshotRevision, FILE_MODE);
        mine = this.#startCompaction(takeSnapshot());
      });
    }
    await mine;
  }

  /** Waits for the write and the compaction under way, then closes the journal. */
  async close(): Promise<void> {
    await this.#compacting;
    await this.#exclusive;
    await this.#journal?.close();
    this.#journal = undefined;
  }

  /**
   * Writes `snapshot` beside the journal, then swaps in a journal that follows it. Called
   * between appends, so that every record from the current end of the journal on goes to the
   * new journal (those at or below the snapshot's revision are skipped at replay). Returns the
   * compaction, which rejects when it failed; `#compacting` never rejects.
   */
  #startCompaction(snapshot: Snapshot): Promise<void> | undefined {
    const journal = this.#journal;
    if (journal === undefined) return undefined;
    const tailStart = journal.bytes;
    const recordsBefore = journal.records;
    const run = (async () => {
      await writeFileAtomic(this.path, snapshot.text, FILE_MODE);
      this.#snapshotRevision = snapshot.revision;
      this.#snapshotBytes = Buffer.byteLength(snapshot.text);
      await this.#runExclusive(async () => {
        const tail = await journal.readFrom(tailStart);
        await journal.replace(snapshot.revision, tail, journal.records - recordsBefore);
      });
      this.#compactions++;
      this.#compactAfterBytes = Math.max(this.#maxBytes, this.#snapshotBytes);
    })();
    this.#compacting = run
      .catch(() => {
        // The snapshot and journal on disk still agree (a new snapshot beside the old journal
        // is a state the replay reads): go on with a longer journal, try again later.
        this.#compactAfterBytes = journal.bytes + Math.max(this.#maxBytes, this.#snapshotBytes);
      })
      .finally(() => {
        this.#compacting = undefined;
      });
    return run;
  }

  #runExclusive(run: () => Promise<void>): Promise<void> {
    const result = this.#exclusive.then(run);
    this.#exclusive = result.catch(() => undefined);
    return result;
  }
}
