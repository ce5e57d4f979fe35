/**
 * The journal file on disk: created and replaced whole through writeFileAtomic (temporary
 * file, fsync, rename, fsync of the directory), appended to with positional writes each
 * followed by fdatasync. The handle stays open while appends keep coming (no open, rename or
 * directory sync per write) and is closed after {@link JOURNAL_IDLE_CLOSE_MS} without one: a
 * file held open for writing keeps its file system from being remounted read-only.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readFile } from 'node:fs/promises';
import { DataDirError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { StoreCorruptError } from './errors.js';
import type { JournalRecord } from './journal.js';
import { decodeJournal, encodeHeader } from './journal.js';

/** How long the journal stays open after an append, for the next one. */
export const JOURNAL_IDLE_CLOSE_MS = 1000;

/** What {@link JournalFile.load} found. */
export interface LoadedJournal {
  file: JournalFile;
  base: number;
  records: Array<{ offset: number; record: JournalRecord }>;
  /** Bytes of a torn last record that were cut off. */
  tornBytes: number;
}

/** A journal. One append, read or replace at a time (the caller serialises them). */
export class JournalFile {
  #handle: FileHandle | undefined;
  /** The close of an idle handle, which the next use waits for. */
  #closing: Promise<void> | undefined;
  #idleTimer: NodeJS.Timeout | undefined;
  readonly #mode: number;
  /** Length of the durable part; a failed append leaves nothing beyond it that counts. */
  #size: number;
  #count: number;

  private constructor(
    readonly path: string,
    mode: number,
    size: number,
    count: number,
  ) {
    this.#mode = mode;
    this.#size = size;
    this.#count = count;
  }

  /** Bytes of the journal, header included. */
  get bytes(): number {
    return this.#size;
  }

  /** Records after the header. */
  get records(): number {
    return this.#count;
  }

  /**
   * Creates the journal of a snapshot at revision `base`, replacing any there is.
   * @throws DataDirError naming the file.
   */
  static async create(path: string, base: number, mode: number): Promise<JournalFile> {
    const header = encodeHeader(base);
    await writeFileAtomic(path, header, mode);
    return new JournalFile(path, mode, header.length, 0);
  }

  /**
   * Reads the journal at `path`, cutting off a torn last record; undefined when there is none.
   * @throws StoreCorruptError when a record before the last one is damaged.
   * @throws DataDirError naming the file when it cannot be read or cut.
   */
  static async load(path: string, mode: number): Promise<LoadedJournal | undefined> {
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new DataDirError(path, `cannot read: ${(err as Error).message}`, { cause: err });
    }
    const decoded = decodeJournal(bytes);
    if (!decoded.ok) throw new StoreCorruptError(path, decoded.offset, decoded.reason);
    const tornBytes = bytes.length - decoded.validBytes;
    if (tornBytes > 0) {
      const handle = await openForAppend(path);
      try {
        // Never acknowledged (its write had not been synced when the process died): drop it,
        // so that the next append does not follow half a line.
        await handle.truncate(decoded.validBytes);
        await handle.datasync();
      } catch (err) {
        throw new DataDirError(path, `cannot cut a torn last record: ${(err as Error).message}`, { cause: err });
      } finally {
        await handle.close();
      }
    }
    const file = new JournalFile(path, mode, decoded.validBytes, decoded.records.length);
    return { file, base: decoded.base, records: decoded.records, tornBytes };
  }

  /**
   * Appends `line` (one encoded record) and waits until it is durable. On failure the journal
   * is as before: the next append writes over whatever part of `line` reached the file.
   * @throws DataDirError naming the file.
   */
  async append(line: Buffer): Promise<void> {
    const handle = await this.#open();
    try {
      let written = 0;
      while (written < line.length) {
        const { bytesWritten } = await handle.write(line, written, line.length - written, this.#size + written);
        written += bytesWritten;
      }
      await handle.datasync();
    } catch (err) {
      // Best effort: a part left behind is a torn tail until the next append overwrites it.
      await handle.truncate(this.#size).catch(() => undefined);
      throw new DataDirError(this.path, `cannot write: ${(err as Error).message}`, { cause: err });
    } finally {
      this.#closeWhenIdle();
    }
    this.#size += line.length;
    this.#count++;
  }

  /** The records appended at or after byte `offset`, as they are on disk. */
  async readFrom(offset: number): Promise<Buffer> {
    const handle = await this.#open();
    try {
      const tail = Buffer.allocUnsafe(this.#size - offset);
      let read = 0;
      while (read < tail.length) {
        const { bytesRead } = await handle.read(tail, read, tail.length - read, offset + read);
        if (bytesRead === 0) throw new DataDirError(this.path, `ends before byte ${this.#size}`);
        read += bytesRead;
      }
      return tail;
    } finally {
      this.#closeWhenIdle();
    }
  }

  /**
   * Replaces the journal, atomically, with one that follows revision `base` and holds `tail`
   * (whole records, `tailRecords` of them).
   * @throws DataDirError naming the file; the journal is then unchanged.
   */
  async replace(base: number, tail: Buffer, tailRecords: number): Promise<void> {
    const header = encodeHeader(base);
    await writeFileAtomic(this.path, Buffer.concat([header, tail]), this.#mode);
    // The handle is of the file just renamed over; the next append opens the new one.
    await this.#closeNow();
    this.#size = header.length + tail.length;
    this.#count = tailRecords;
  }

  async close(): Promise<void> {
    await this.#closeNow();
  }

  async #open(): Promise<FileHandle> {
    clearTimeout(this.#idleTimer);
    await this.#closing;
    this.#handle ??= await openForAppend(this.path);
    return this.#handle;
  }

  #closeWhenIdle(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = setTimeout(() => void this.#closeNow(), JOURNAL_IDLE_CLOSE_MS);
    // An open journal must not keep a closing process alive.
    this.#idleTimer.unref();
  }

  #closeNow(): Promise<void> {
    clearTimeout(this.#idleTimer);
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined) {
      this.#closing = handle
        .close()
        .catch(() => undefined)
        .finally(() => {
          this.#closing = undefined;
        });
    }
    return this.#closing ?? Promise.resolve();
  }
}

async function openForAppend(path: string): Promise<FileHandle> {
  try {
    // Not 'a': positional writes are ignored under O_APPEND, and a failed append must be
    // written over.
    return await open(path, 'r+');
  } catch (err) {
    throw new DataDirError(path, `cannot open: ${(err as Error).message}`, { cause: err });
  }
}
