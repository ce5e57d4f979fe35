import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DataDirError, FileStore, StoreError } from '../../control-plane/index.js';
import { StoreErrorCode } from '../../control-plane/store/errors.js';
import type { StoreEntry } from '../../control-plane/store/store.js';
import { tempDir } from './helpers.js';
import { WatchRecorder } from './store-suite.js';

const CRASH_RUNS = 50;
/** Small enough that the writer compacts every few transactions, so kills land inside compactions too. */
const CRASH_COMPACT_JOURNAL_BYTES = 1024 * 1024;
const crashWriter = fileURLToPath(new URL('./store-crash-writer.js', import.meta.url));

describe('FileStore', () => {
  it('persists puts and deletes across reopen, with the journal and the snapshot at 0600', async () => {
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
      assert.equal((await stat(join(dir.path, 'state.journal'))).mode & 0o777, 0o600);
      await reopened.compact();
      assert.equal((await stat(join(dir.path, 'state.json'))).mode & 0o777, 0o600);
      await reopened.close();
      await assert.rejects(reopened.get('b/1'), (err: unknown) => err instanceof StoreError && err.code === StoreErrorCode.CLOSED);
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
      const recordsBefore = store.stats.journalRecords;
      await Promise.all(Array.from({ length: 2000 }, (_, i) => store.put(`burst/${i}`, i)));
      assert.equal((await store.list('burst/')).length, 2000);
      // One append in flight, everything made meanwhile in the next: a handful of records, not 2,000.
      assert.ok(store.stats.journalRecords - recordsBefore <= 10, `${store.stats.journalRecords - recordsBefore} records for the burst`);
      assert.deepEqual(await readdir(dir.path), ['state.journal']);
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

  it('reads a format 1 state file (no revisions) as written at revision 1, and drops interrupted writes', async () => {
    const dir = await tempDir();
    try {
      await writeFile(join(dir.path, 'state.json'), '{"format":1,"entries":{"a":{"n":1}}}');
      await writeFile(join(dir.path, 'state.json.tmp-123-abcd'), '{"format":2,"rev');
      await writeFile(join(dir.path, 'state.journal.tmp-123-abcd'), '0000');
      const store = await FileStore.open(dir.path);
      assert.deepEqual(await readdir(dir.path), ['state.json']);
      assert.deepEqual(await store.getEntry('a'), { revision: 1, entry: { key: 'a', value: { n: 1 }, modRevision: 1 } });
      assert.equal(await store.put('b', 2), 2);
      await store.compact();
      await store.close();
      const saved = JSON.parse(await readFile(join(dir.path, 'state.json'), 'utf8')) as { format: number; revision: number };
      assert.equal(saved.format, 2);
      assert.equal(saved.revision, 2);
    } finally {
      await dir.remove();
    }
  });

  it('keeps the revision across a restart; watches from before it, or beyond the kept history, are told to relist', async () => {
    const dir = await tempDir();
    try {
      const store = await FileStore.open(dir.path, { watchHistoryEvents: 2 });
      const r1 = await store.put('h/1', 1);
      await store.put('h/2', 2);
      const r3 = await store.put('h/3', 3);
      const r4 = await store.put('h/4', 4);
      const r5 = await store.put('h/5', 5);
      const tooOld = new WatchRecorder();
      store.watch('h/', r1, tooOld);
      await tooOld.until('the relist', () => tooOld.relists.length > 0);
      assert.equal(tooOld.relists[0]?.code, StoreErrorCode.COMPACTED);
      const kept = new WatchRecorder();
      const watch = store.watch('h/', r3, kept);
      await kept.until('the kept history', () => kept.events.length >= 2);
      assert.deepEqual(kept.events.map((e) => [e.key, e.revision]), [['h/4', r4], ['h/5', r5]]);
      await watch.close();
      await store.close();
      const reopened = await FileStore.open(dir.path);
      assert.equal((await reopened.listEntries('h/')).revision, r5);
      const beforeRestart = new WatchRecorder();
      reopened.watch('h/', r4, beforeRestart);
      await beforeRestart.until('the relist after the restart', () => beforeRestart.relists.length > 0);
      assert.equal(await reopened.put('h/6', 6), r5 + 1);
      await reopened.close();
    } finally {
      await dir.remove();
    }
  });

  it('gives leased keys a fresh lease after a restart: they stay for a full time to live, and go unless put again', async () => {
    const dir = await tempDir();
    // Long enough to reopen and put a key again before the fresh lease ends, even on a loaded machine.
    const ttlMs = 1000;
    try {
      const store = await FileStore.open(dir.path);
      const lease = await store.grantLease(ttlMs);
      await store.put('e/gone', 1, { lease });
      await store.put('e/back', 2, { lease });
      await store.put('e/plain', 3);
      await store.close();
      // Longer than the lease: without a fresh lease at open, the keys would already be due.
      await new Promise((resolve) => setTimeout(resolve, ttlMs * 1.2));
      const reopened = await FileStore.open(dir.path);
      const { revision, entries } = await reopened.listEntries('e/');
      assert.deepEqual(entries.map((e: StoreEntry) => [e.key, e.lease]), [['e/back', lease.id], ['e/gone', lease.id], ['e/plain', undefined]]);
      const recorder = new WatchRecorder();
      reopened.watch('e/', revision, recorder);
      // The owner of e/back comes back in time and puts it again, without the old lease.
      await reopened.put('e/back', 22);
      await recorder.until('the expiry', () => recorder.events.some((e) => e.type === 'delete'), ttlMs * 10);
      assert.deepEqual(await reopened.list('e/'), [['e/back', 22], ['e/plain', 3]]);
      await reopened.close();
    } finally {
      await dir.remove();
    }
  });

  it('with holdRestoredLeases, keeps restored leased keys until startRestoredLeases, then for their time to live plus the extra', async () => {
    const dir = await tempDir();
    const ttlMs = 300;
    const extraMs = 400;
    try {
      const store = await FileStore.open(dir.path);
      const lease = await store.grantLease(ttlMs);
      await store.put('e/held', 1, { lease });
      await store.close();
      const reopened = await FileStore.open(dir.path, { holdRestoredLeases: true });
      const { revision } = await reopened.listEntries('e/');
      const recorder = new WatchRecorder();
      reopened.watch('e/', revision, recorder);
      // Twice the time to live with the clock held: a lease counted from the open would have ended.
      await new Promise((resolve) => setTimeout(resolve, ttlMs * 2));
      assert.deepEqual(await reopened.list('e/'), [['e/held', 1]]);
      const startedAt = performance.now();
      reopened.startRestoredLeases(extraMs);
      await recorder.until('the expiry', () => recorder.events.some((e) => e.type === 'delete'), (ttlMs + extraMs) * 10);
      assert.ok(performance.now() - startedAt >= ttlMs + extraMs - 5, 'not before its time to live plus the extra');
      assert.deepEqual(await reopened.list('e/'), []);
      await reopened.close();
    } finally {
      await dir.remove();
    }
  });

  it(`survives SIGKILL at any moment: ${CRASH_RUNS} kills, each state read back whole and at or after the last acknowledged one`, async (t) => {
    const dir = await tempDir();
    const started = Date.now();
    let lastAcked = 0;
    let acks = 0;
    /** Runs killed with a temporary file on disk, and runs whose last durable write was never acknowledged. */
    let killedInsideWrite = 0;
    let durableBeforeAck = 0;
    /** Runs killed between a compaction's snapshot and its journal swap, and runs that left a torn record. */
    let killedInsideCompaction = 0;
    let tornRecords = 0;
    /** revision → the counter that write acknowledged. */
    const acked = new Map<number, number>();
    try {
      for (let run = 0; run < CRASH_RUNS; run++) {
        const child = spawn(process.execPath, [crashWriter, dir.path, String(CRASH_COMPACT_JOURNAL_BYTES)], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
        const closed = once(child, 'close');
        // A fresh Node process on a loaded machine can take many seconds to write: the bound only catches a hang.
        const firstAck = new WatchRecorder();
        await firstAck.until(`run ${run}: a first acknowledged write (stderr: ${err})`, () => out.includes('\n') || child.exitCode !== null, 60_000);
        // Kill at a random moment of the loop: between writes, inside one, during a rename.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 40));
        child.kill('SIGKILL');
        const [, signal] = (await closed) as [number | null, NodeJS.Signals | null];
        assert.equal(signal, 'SIGKILL', `run ${run}: the writer exited by itself: ${err}`);
        for (const line of out.split('\n')) {
          const match = /^ack (\d+) (\d+)$/.exec(line);
          if (match === null) continue;
          acks++;
          acked.set(Number(match[1]), Number(match[2]));
          lastAcked = Math.max(lastAcked, Number(match[1]));
        }
        if ((await readdir(dir.path)).some((name) => name.includes('.tmp-'))) killedInsideWrite++;
        if ((await journalBase(dir.path)) < (await snapshotRevision(dir.path))) killedInsideCompaction++;
        const store = await FileStore.open(dir.path);
        const { revision, entries } = await store.listEntries('');
        if (revision > lastAcked) durableBeforeAck++;
        if (store.stats.tornBytesAtOpen > 0) tornRecords++;
        await store.close();
        const counter = entries.find((e) => e.key === 'counter');
        const mirror = entries.find((e) => e.key === 'mirror')?.value as { n: number; blob: string } | undefined;
        assert.ok(revision >= lastAcked, `run ${run}: read revision ${revision}, but ${lastAcked} was acknowledged`);
        // Every write is one transaction that bumps the counter: the revision is the counter.
        assert.deepEqual([counter?.value, counter?.modRevision, mirror?.n, mirror?.blob.length], [revision, revision, revision, 256 * 1024]);
        if (acked.has(revision)) assert.equal(acked.get(revision), revision);
        const left = await readdir(dir.path);
        assert.ok(left.includes('state.journal') && left.every((name) => name === 'state.journal' || name === 'state.json'), `open removed what the kill interrupted: ${left.join(', ')}`);
      }
    } finally {
      await dir.remove();
    }
    t.diagnostic(
      `${CRASH_RUNS} kills in ${Date.now() - started} ms: ${acks} acknowledged writes, last revision ${lastAcked}; ` +
        `${killedInsideWrite} kills inside an atomic file write, ${killedInsideCompaction} between a snapshot and its journal swap, ` +
        `${tornRecords} leaving a torn last record, ${durableBeforeAck} with a durable write not yet acknowledged`,
    );
  });
});

/** The revision the journal of `dataDir` follows (its header's), -1 without a journal. */
async function journalBase(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'state.journal'), 'utf8').catch(() => undefined);
  if (text === undefined) return -1;
  return (JSON.parse(text.slice(9, text.indexOf('\n'))) as { base: number }).base;
}

/** The revision of the snapshot of `dataDir`, 0 without one. */
async function snapshotRevision(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'state.json'), 'utf8').catch(() => undefined);
  return text === undefined ? 0 : (JSON.parse(text) as { revision: number }).revision;
}
