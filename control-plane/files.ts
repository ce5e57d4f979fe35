/** File helpers for the data directory: crash-safe writes and reads that name the file. */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DataDirError } from './errors.js';

/**
 * Writes `contents` to `path` so that a crash leaves either the old file or the new one, never
 * half of it: write a temporary file beside it, fsync, rename over, fsync the directory.
 * @throws DataDirError naming the file.
 */
export async function writeFileAtomic(path: string, contents: string | Uint8Array, mode: number): Promise<void> {
  const tmpPath = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const file = await open(tmpPath, 'w', mode);
    try {
      await file.writeFile(contents);
      // The mode passed to open() is filtered by the umask; set it exactly.
      await file.chmod(mode);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmpPath, path);
    await syncDirectory(dirname(path));
  } catch (err) {
    await rm(tmpPath, { force: true }).catch(() => undefined);
    throw new DataDirError(path, `cannot write: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Reads a UTF-8 file, or returns undefined when it does not exist.
 * @throws DataDirError naming the file for any other failure.
 */
export async function readFileIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DataDirError(path, `cannot read: ${(err as Error).message}`, { cause: err });
  }
}

async function syncDirectory(path: string): Promise<void> {
  // Makes the rename itself durable. Some filesystems refuse fsync on directories; the rename
  // is still atomic there, so that refusal is not an error.
  const dir = await open(path, 'r');
  try {
    await dir.sync().catch(() => undefined);
  } finally {
    await dir.close();
  }
}
