import { open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Replaces `path` with `content` so that a crash at any moment leaves either the old file or
 * the new one, never a mix: the content goes to a temporary file that is flushed to disk
 * before it is renamed over the target, and the directory is flushed after the rename so the
 * rename itself survives a power cut. Writes to one path must not overlap (the temporary
 * name is per process).
 */
export async function writeFileAtomic(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    // A leftover of a crashed write may have another mode: make the file afresh.
    await rm(temporary, { force: true });
    const file = await open(temporary, 'wx', mode);
    try {
      await file.writeFile(content);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw error;
  }
  const directory = await open(dirname(path), 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}
