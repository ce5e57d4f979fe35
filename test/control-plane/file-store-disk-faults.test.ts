/**
 * The file store on a full and on a read-only disk (a small tmpfs of the test's own, so it
 * needs root, as the multi-host tests do): a write that cannot be made durable fails with
 * TRELLIS_ERR_STORE and leaves no half record behind; once the disk is fixed the next write
 * carries it, and a reopen sees every change.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileStore, StoreError } from '../../control-plane/index.js';
import { StoreErrorCode } from '../../control-plane/store/errors.js';
import { JOURNAL_IDLE_CLOSE_MS } from '../../control-plane/store/journal-file.js';

const TMPFS_BYTES = 512 * 1024;

function run(command: string, args: string[]): void {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  assert.equal(result.status, 0, `${command} ${args.join(' ')} (needs root): ${result.stderr}`);
}

/** Runs `test` with a data directory on a fresh tmpfs of {@link TMPFS_BYTES}. */
async function onTmpfs(test: (dataDir: string) => Promise<void>): Promise<void> {
  const mountPoint = await mkdtemp(join(tmpdir(), 'trellis-store-tmpfs-'));
  try {
    run('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES},mode=0700`, 'trellis-store-test', mountPoint]);
    try {
      await test(mountPoint);
    } finally {
      spawnSync('umount', ['-l', mountPoint]);
    }
  } finally {
    await rm(mountPoint, { recursive: true, force: true });
  }
}

/**
 * Remounts `path` read-only. The store holds its journal open for a second after each append,
 * and Linux refuses to remount a file system with a file open for writing ("busy"): try again
 * until that second has passed.
 */
async function remountReadOnly(path: string): Promise<void> {
  const deadline = Date.now() + JOURNAL_IDLE_CLOSE_MS * 10;
  for (;;) {
    const result = spawnSync('mount', ['-o', 'remount,ro', path], { encoding: 'utf8' });
    if (result.status === 0) return;
    assert.ok(Date.now() < deadline && /busy/.test(result.stderr), `mount -o remount,ro (needs root): ${result.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, JOURNAL_IDLE_CLOSE_MS / 4));
  }
}

function isStoreFailure(err: unknown): boolean {
  return err instanceof StoreError && err.code === StoreErrorCode.STORE;
}

describe('FileStore on a faulty disk', () => {
  it('fails a write on a full disk, cuts what it half wrote, and the next write carries it once there is room', () =>
    onTmpfs(async (dataDir) => {
      const store = await FileStore.open(dataDir);
      await store.put('d/1', 1);
      const filler = join(dataDir, 'filler');
      await writeFile(filler, Buffer.alloc(TMPFS_BYTES)).catch((err: NodeJS.ErrnoException) => assert.equal(err.code, 'ENOSPC'));
      // Larger than what is left: part of it may reach the file before the write fails.
      await assert.rejects(store.put('d/2', 'x'.repeat(64 * 1024)), isStoreFailure);
      await rm(filler);
      await store.put('d/3', 3);
      await store.close();
      const reopened = await FileStore.open(dataDir);
      assert.equal(reopened.stats.tornBytesAtOpen, 0, 'the failed append left nothing behind');
      assert.deepEqual(
        (await reopened.listEntries('d/')).entries.map((e) => [e.key, e.modRevision]),
        [
          ['d/1', 1],
          ['d/2', 2],
          ['d/3', 3],
        ],
      );
      await reopened.close();
    }));

  it('fails a write on a read-only disk, and writes again once it is writable', () =>
    onTmpfs(async (dataDir) => {
      const store = await FileStore.open(dataDir);
      await store.put('r/1', 1);
      await remountReadOnly(dataDir);
      try {
        await assert.rejects(store.put('r/2', 2), isStoreFailure);
      } finally {
        run('mount', ['-o', 'remount,rw', dataDir]);
      }
      assert.equal(await store.put('r/3', 3), 3);
      await store.close();
      const reopened = await FileStore.open(dataDir);
      assert.deepEqual(await reopened.list('r/'), [
        ['r/1', 1],
        ['r/2', 2],
        ['r/3', 3],
      ]);
      await reopened.close();
    }));
});
