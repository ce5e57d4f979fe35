import assert from 'node:assert/strict';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DataDirError, FileStore, StoreError } from '../../control-plane/index.js';
import { tempDir } from './helpers.js';

describe('FileStore', () => {
  it('persists puts and deletes across reopen, with the state file at 0600', async () => {
    const dir = await tempDir();
    try {
      const store = await FileStore.open(dir.path);
      await store.put('a/1', { n: 1 });
      await store.put('a/2', [1, 'two']);
      await store.put('b/1', 'x');
      assert.equal(await store.delete('a/1'), true);
      assert.equal(await store.delete('missing'), false);
      await store.close();
      const reopened = await FileStore.open(dir.path);
      assert.deepEqual(await reopened.list('a/'), [['a/2', [1, 'two']]]);
      assert.equal(await reopened.get('b/1'), 'x');
      assert.equal((await stat(join(dir.path, 'state.json'))).mode & 0o777, 0o600);
      await reopened.close();
      await assert.rejects(reopened.get('b/1'), (err: unknown) => err instanceof StoreError && err.code === 'TRELLIS_ERR_STORE');
    } finally {
      await dir.remove();
    }
  });

  it('returns copies, coalesces a burst of writes, and leaves no temporary files', async () => {
    const dir = await tempDir();
    try {
      const store = await FileStore.open(dir.path);
      const value = { nested: { n: 1 } };
      await store.put('k', value);
      value.nested.n = 2;
      assert.deepEqual(await store.get('k'), { nested: { n: 1 } });
      await Promise.all(Array.from({ length: 2000 }, (_, i) => store.put(`burst/${i}`, i)));
      assert.equal((await store.list('burst/')).length, 2000);
      assert.deepEqual(await readdir(dir.path), ['state.json']);
      await store.close();
    } finally {
      await dir.remove();
    }
  });

  it('names the state file when it is corrupt', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'state.json'), '{"format":1,"entries":');
      await assert.rejects(FileStore.open(dir.path), (err: unknown) => err instanceof DataDirError && err.code === 'TRELLIS_ERR_DATA_DIR' && err.message.includes('state.json'));
    } finally {
      await dir.remove();
    }
  });
});
