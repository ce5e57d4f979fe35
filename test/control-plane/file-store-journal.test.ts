/**
 * The file store's snapshot and journal on disk: torn and damaged records, compaction, a crash
 * in the middle of one, and state files written before the journal existed.
 */
import assert from 'node:assert/strict';
import { appendFile, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileStore, StoreError } from '../../control-plane/index.js';
import type { StoreCorruptError } from '../../control-plane/store/errors.js';
import { StoreErrorCode } from '../../control-plane/store/errors.js';
import { encodeRecord } from '../../control-plane/store/journal.js';
import type { StoreEntry } from '../../control-plane/store/store.js';
import { tempDir } from './helpers.js';
import { WatchRecorder } from './store-suite.js';

const JOURNAL = 'state.journal';
const SNAPSHOT = 'state.json';

/** Everything a reopened store must give back the same: the revision and every entry with its revisions and lease. */
async function everything(store: FileStore): Promise<{ revision: number; entries: StoreEntry[] }> {
  return store.listEntries('');
}

/** Runs `run` in a fresh data directory, removed afterwards. */
async function inDataDir(run: (dataDir: string) => Promise<void>): Promise<void> {
  const dir = await tempDir();
  try {
    await run(dir.path);
  } finally {
    await dir.remove();
  }
}

/** Byte offsets at which each line of the journal starts. */
function lineStarts(bytes: Buffer): number[] {
  const starts = [0];
  for (let i = bytes.indexOf(0x0a); i !== -1 && i + 1 < bytes.length; i = bytes.indexOf(0x0a, i + 1)) starts.push(i + 1);
  return starts;
}

function isCorrupt(err: unknown): err is StoreCorruptError {
  return err instanceof StoreError && err.code === StoreErrorCode.CORRUPT;
}

describe('FileStore journal', () => {
  it('drops a torn last record (half a line, or a whole line with a bad checksum) and opens at the last durable write', () =>
    inDataDir(async (dataDir) => {
      const store = await FileStore.open(dataDir);
      await store.put('t/1', 1);
      await store.put('t/2', { two: 2 });
      await store.close();
      const journal = join(dataDir, JOURNAL);
      const durableBytes = (await stat(journal)).size;
      const reference = await FileStore.open(dataDir);
      const expected = await everything(reference);
      await reference.close();

      const next = encodeRecord({ txns: [{ revision: 3, ops: [{ put: 't/3', value: 'x'.repeat(200) }] }], leases: {} });
      await appendFile(journal, next.subarray(0, 100));
      const afterHalf = await FileStore.open(dataDir);
      assert.deepEqual(await everything(afterHalf), expected);
      assert.equal(afterHalf.stats.tornBytesAtOpen, 100);
      assert.equal((await stat(journal)).size, durableBytes, 'the torn part was cut off');
      // The next write follows the last durable record, not half a line.
      assert.equal(await afterHalf.put('t/3', 3), 3);
      await afterHalf.close();

      const damaged = Buffer.from(encodeRecord({ txns: [{ revision: 4, ops: [{ put: 't/4', value: 4 }] }], leases: {} }));
      damaged.writeUInt8(damaged.readUInt8(damaged.length - 3) ^ 0x01, damaged.length - 3);
      await appendFile(journal, damaged);
      const afterDamaged = await FileStore.open(dataDir);
      assert.equal(afterDamaged.stats.tornBytesAtOpen, damaged.length);
      assert.deepEqual((await everything(afterDamaged)).entries.map((e) => [e.key, e.value, e.modRevision]), [
        ['t/1', 1, 1],
        ['t/2', { two: 2 }, 2],
        ['t/3', 3, 3],
      ]);
      await afterDamaged.close();
    }));

  it('refuses a damaged record before the last one with TRELLIS_ERR_STORE_CORRUPT, and a journal that does not follow its snapshot', () =>
    inDataDir(async (dataDir) => {
      const store = await FileStore.open(dataDir);
      for (let i = 1; i <= 3; i++) await store.put(`c/${i}`, i);
      await store.close();
      const journal = join(dataDir, JOURNAL);
      const bytes = await readFile(journal);
      const starts = lineStarts(bytes);
      assert.equal(starts.length, 4, 'a header and one record per awaited put');
      const middle = starts[2]!;
      const flipped = Buffer.from(bytes);
      // A byte of the second record's JSON: its checksum no longer matches.
      flipped.writeUInt8(flipped.readUInt8(middle + 20) ^ 0x04, middle + 20);
      await writeFile(journal, flipped);
      await assert.rejects(FileStore.open(dataDir), (err: unknown) => isCorrupt(err) && err.offset === middle && err.path === journal);
      // Nothing was cut: the operator still has every byte to look at.
      assert.deepEqual(await readFile(journal), flipped);

      await writeFile(journal, bytes);
      const reopened = await FileStore.open(dataDir);
      await reopened.compact();
      await reopened.put('c/4', 4);
      await reopened.close();
      // The journal now follows the snapshot at revision 3: without the snapshot, revisions 1–3 are missing.
      await unlink(join(dataDir, SNAPSHOT));
      await assert.rejects(FileStore.open(dataDir), (err: unknown) => isCorrupt(err) && err.offset === 0);
    }));

  it('compacts once the journal passes its bound, and reopens to the same state', () =>
    inDataDir(async (dataDir) => {
      const compactJournalBytes = 8 * 1024;
      const store = await FileStore.open(dataDir, { compactJournalBytes, watchHistoryEvents: 100_000 });
      const lease = await store.grantLease(60_000);
      const recorder = new WatchRecorder();
      store.watch('', 0, recorder);
      let revision = 0;
      for (let i = 0; i < 300; i++) {
        revision = await store.put(`k/${i % 50}`, { i, pad: 'p'.repeat(100) }, i % 3 === 0 ? { lease } : {});
        if (i % 7 === 0) await store.delete(`k/${(i + 25) % 50}`);
      }
      await store.transaction([
        { type: 'put', key: 'txn/a', value: 1 },
        { type: 'delete', key: 'k/1' },
      ]);
      const before = await everything(store);
      await recorder.until('every change', () => recorder.events.at(-1)?.revision === before.revision);
      await store.close();
      assert.ok(store.stats.compactions >= 3, `${store.stats.compactions} compactions`);
      assert.ok(store.stats.journalBytes < 2 * compactJournalBytes, `journal of ${store.stats.journalBytes} bytes after compactions`);
      assert.ok(revision > 300);
      // Every change reached the watch once, in order, across the journal swaps.
      const revisions = [...new Set(recorder.events.map((e) => e.revision))];
      assert.deepEqual(revisions, Array.from({ length: before.revision }, (_, i) => i + 1));

      const reopened = await FileStore.open(dataDir, { compactJournalBytes });
      assert.deepEqual(await everything(reopened), before);
      assert.ok(before.entries.some((e) => e.lease === lease.id), 'leased keys keep their lease');
      await reopened.close();
    }));

  it('reopens correctly after a crash between a compaction’s snapshot and its journal swap', () =>
    inDataDir(async (dataDir) => {
      const store = await FileStore.open(dataDir);
      for (let i = 1; i <= 5; i++) await store.put(`s/${i}`, i);
      const oldJournal = await readFile(join(dataDir, JOURNAL));
      await store.compact();
      // Written after the snapshot (revision 5): in the new journal, and in the old one had the swap not happened.
      await store.put('s/6', 6);
      await store.delete('s/1');
      await store.transaction([
        { type: 'put', key: 's/7', value: 7 },
        { type: 'put', key: 's/2', value: 22 },
      ]);
      await store.close();
      const reference = await FileStore.open(dataDir);
      const expected = await everything(reference);
      await reference.close();
      assert.equal(expected.revision, 8);

      // The disk as the crash leaves it: the new snapshot beside the old journal (which follows
      // revision 0) holding every record, those the snapshot already has and those after it.
      const newJournal = await readFile(join(dataDir, JOURNAL));
      const tail = newJournal.subarray(newJournal.indexOf(0x0a) + 1);
      await writeFile(join(dataDir, JOURNAL), Buffer.concat([oldJournal, tail]));
      const afterCrash = await FileStore.open(dataDir);
      assert.deepEqual(await everything(afterCrash), expected);
      assert.equal(await afterCrash.put('s/8', 8), 9);
      await afterCrash.close();
      // The crash left only the old journal's records up to the snapshot: the snapshot has them all.
      await writeFile(join(dataDir, JOURNAL), oldJournal);
      const snapshotOnly = await FileStore.open(dataDir);
      assert.deepEqual((await everything(snapshotOnly)).revision, 5);
      await snapshotOnly.close();
    }));

  it('opens a whole-state file of before the journal as its snapshot, leases included', () =>
    inDataDir(async (dataDir) => {
      // What the file store wrote until now: the whole state as one JSON file, no journal.
      const legacy = {
        format: 2,
        revision: 7,
        entries: {
          'config/version': { value: 3, modRevision: 7 },
          'registry/a': { value: { weight: 1 }, modRevision: 5, lease: 'aa11' },
          'tokens/x': { value: { secretSha256: 'ab' }, modRevision: 2 },
        },
        leases: { aa11: { ttlMs: 60_000 } },
      };
      await writeFile(join(dataDir, SNAPSHOT), JSON.stringify(legacy));
      const store = await FileStore.open(dataDir);
      assert.deepEqual(await everything(store), {
        revision: 7,
        entries: [
          { key: 'config/version', value: 3, modRevision: 7 },
          { key: 'registry/a', value: { weight: 1 }, modRevision: 5, lease: 'aa11' },
          { key: 'tokens/x', value: { secretSha256: 'ab' }, modRevision: 2 },
        ],
      });
      assert.equal(await store.put('config/version', 4), 8);
      await store.close();
      const journalHeader = (await readFile(join(dataDir, JOURNAL), 'utf8')).split('\n')[0] ?? '';
      assert.deepEqual(JSON.parse(journalHeader.slice(9)), { journal: 1, base: 7 });
      assert.deepEqual(JSON.parse(await readFile(join(dataDir, SNAPSHOT), 'utf8')), legacy, 'the old file stays as it was until a compaction');
      const reopened = await FileStore.open(dataDir);
      assert.deepEqual((await reopened.getEntry('config/version')).entry, { key: 'config/version', value: 4, modRevision: 8 });
      await reopened.close();
    }));
});
