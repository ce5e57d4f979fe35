/**
 * The journal file on disk: created and replaced whole through writeFileAtomic (temporary
 * file, fsync, rename, fsync of the directory), appended to with positional writes each
 * followed by fdatasync. The handle stays open between appends: no open, rename or directory
 * sync per write.
 */
import type { FileHandle } from 'node:fs/promises';
import { open, readFile } from 'node:fs/promises';
import { DataDirError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { StoreCorruptError } from './errors.js';
import type { JournalRecord } from './journal.js';
import { decodeJournal, encodeHeader } from './journal.js';

/** What {@link JournalFile.load} found. */
export interface LoadedJournal {
  file: JournalFile;
  base: number;
  records: Array<{ offset: number; record: JournalRecord }>;
  /** Bytes of a torn last record that were cut off. */
  tornBytes: number;
}

/** An open journal. One append or replace at a time (the caller serialises them). */
export class JournalFile {
  private constructor(
    readonly path: string,
    private readonly mode: number,
    private handle: FileHandle,
    /** Length of the durable part; a failed append leaves nothing beyond it that counts. */
    private size: number,
    private count: number,
  ) {}

  /** Bytes of the journal, header included. */
  get bytes(): number {
    return this.size;
  }

  /** Records after the header. */
  get records(): number {
    return this.count;
  }

  /**
   * Creates the journal of a snapshot at revision `base`, replacing any there is.
   * @throws DataDirError naming the file.
   */
  static async create(path: string, base: number, mode: number): Promise<JournalFile> {
    const header = encodeHeader(base);
    await writeFileAtomic(path, header, mode);
    return new JournalFile(path, mode, await openForAppend(path), header.length, 0);
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
    const handle = await openForAppend(path);
    const tornBytes = bytes.length - decoded.validBytes;
    if (tornBytes > 0) {
      try {
        // Never acknowledged (its write had not been synced when the process died): drop it,
        // so that the next append does not follow half a line.
        await handle.truncate(decoded.validBytes);
        await handle.datasync();
      } catch (err) {
        await handle.close();
        throw new DataDirError(path, `cannot cut a torn last record: ${(err as Error).message}`, { cause: err });
      }
    }
    const file = new JournalFile(path, mode, handle, decoded.validBytes, decoded.records.length);
    return { file, base: decoded.base, records: decoded.records, tornBytes };
  }

  /**
   * Appends `line` (one encoded record) and waits until it is durable. On failure the journal
   * is as before: the next append writes over whatever part of `line` reached the file.
   * @throws DataDirError naming the file.
   */
  async append(line: Buffer): Promise<void> {
    try {
      let written = 0;
      while (written < line.length) {
        const { bytesWritten } = await this.handle.write(line, written, line.length - written, this.size + written);
        written += bytesWritten;
      }
      await this.handle.datasync();
    } catch (err) {
      // Best effort: a part left behind is a torn tail until the next append overwrites it.
      await this.handle.truncate(this.size).catch(() => undefined);
      throw new DataDirError(this.path, `cannot write: ${(err as Error).message}`, { cause: err });
    }
    this.size += line.length;
    this.count++;
  }

  /** The records appended at or after byte `offset`, as they are on disk. */
  async readFrom(offset: number): Promise<Buffer> {
    const tail = Buffer.allocUnsafe(this.size - offset);
    let read = 0;
    while (read < tail.length) {
      const { bytesRead } = await this.handle.read(tail, read, tail.length - read, offset + read);
      if (bytesRead === 0) throw new DataDirError(this.path, `ends before byte ${this.size}`);
      read += bytesRead;
    }
    return tail;
  }

  /**
   * Replaces the journal, atomically, with one that follows revision `base` and holds `tail`
   * (whole records, `tailRecords` of them).
   * @throws DataDirError naming the file; the journal is then unchanged.
   */
  async replace(base: number, tail: Buffer, tailRecords: number): Promise<void> {
    const header = encodeHeader(base);
    await writeFileAtomic(this.path, Buffer.concat([header, tail]), this.mode);
    const handle = await openForAppend(this.path);
    const old = this.handle;
    this.handle = handle;
    this.size = header.length + tail.length;
    this.count = tailRecords;
    await old.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.handle.close();
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
