/**
 * Runs the Store compliance suite against both implementations, then what only etcd has:
 * compaction, a killed and restarted etcd, an etcd nobody answers for. The etcd tests start
 * a real etcd (test/support/etcd.ts); without one they fail.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import { StoreErrorCode } from '../../control-plane/store/errors.js';
import type { StoreCompactedError } from '../../control-plane/store/errors.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import type { EtcdStoreInit } from '../../control-plane/store/etcd-store.js';
import { FileStore } from '../../control-plane/store/file-store.js';
import type { Store } from '../../control-plane/store/store.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';
import { freeLoopbackPort } from '../support/ports.js';
import { tempDir } from './helpers.js';
import { WatchRecorder, rejectsWithCode, storeSuite } from './store-suite.js';

storeSuite('FileStore', async () => {
  const dir = await tempDir();
  const store = await FileStore.open(dir.path);
  const opened: Store[] = [store];
  return {
    store,
    // Long enough that a loaded machine's event-loop stalls do not end a lease kept alive.
    leaseTtlMs: 500,
    openPeer: async () => {
      // One file store per data directory at a time: the peer is the same state reopened.
      await store.close();
      const peer = await FileStore.open(dir.path);
      opened.push(peer);
      return { peer, concurrent: false };
    },
    dispose: async () => {
      for (const s of opened) await s.close();
      await dir.remove();
    },
  };
});

describe('EtcdStore', () => {
  let etcd: TestEtcd | undefined;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });
  const etcdUrl = (): string => {
    assert.ok(etcd !== undefined, 'etcd did not start');
    return etcd.url;
  };
  const freshPrefix = (): string => `/trellis-test-${randomBytes(6).toString('hex')}/`;
  const connect = (prefix: string, extra: Partial<EtcdStoreInit> = {}): Promise<EtcdStore> => EtcdStore.connect({ hosts: [etcdUrl()], prefix, ...extra });

  storeSuite('EtcdStore', async () => {
    const prefix = freshPrefix();
    const store = await connect(prefix);
    const opened: Store[] = [store];
    return {
      store,
      // etcd counts whole seconds; the test etcd's shortest lease is 1 s.
      leaseTtlMs: 1000,
      openPeer: async () => {
        const peer = await connect(prefix);
        opened.push(peer);
        return { peer, concurrent: true };
      },
      dispose: async () => {
        for (const s of opened) await s.close();
      },
    };
  });

  it('keeps keys under its prefix as JSON, and refuses a stored value that is not JSON', async () => {
    const prefix = freshPrefix();
    const store = await connect(prefix);
    const raw = new Etcd3({ hosts: [etcdUrl()] });
    try {
      await store.put('a/b', { n: 1 });
      assert.equal(await raw.get(`${prefix}a/b`).string(), '{"n":1}');
      await raw.put(`${prefix}bad`).value('not json');
      await rejectsWithCode(store.get('bad'), StoreErrorCode.STORE);
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('tells a watch whose revision was compacted away to relist, and the relisted watch goes on', async () => {
    const store = await connect(freshPrefix());
    const raw = new Etcd3({ hosts: [etcdUrl()] });
    try {
      const r1 = await store.put('c/1', 1);
      await store.put('c/2', 2);
      const r3 = await store.put('c/3', 3);
      await raw.kv.compact({ revision: String(r3), physical: true });
      const stale = new WatchRecorder();
      store.watch('c/', r1, stale);
      await stale.until('the relist', () => stale.relists.length > 0);
      assert.equal(stale.relists[0]?.code, StoreErrorCode.COMPACTED);
      assert.equal((stale.relists[0] as StoreCompactedError).fromRevision, r1);
      assert.deepEqual(stale.events, []);
      const listed = await store.listEntries('c/');
      assert.deepEqual(
        listed.entries.map((e) => e.key),
        ['c/1', 'c/2', 'c/3'],
      );
      const relisted = new WatchRecorder();
      const watch = store.watch('c/', listed.revision, relisted);
      const r4 = await store.put('c/4', 4);
      await relisted.until('the change after the relist', () => relisted.events.length > 0);
      assert.deepEqual(
        relisted.events.map((e) => [e.key, e.revision]),
        [['c/4', r4]],
      );
      await watch.close();
    } finally {
      raw.close();
      await store.close();
    }
  });

  it('is unavailable when nothing answers', async () => {
    const port = await freeLoopbackPort();
    const started = Date.now();
    await rejectsWithCode(EtcdStore.connect({ hosts: [`http://127.0.0.1:${port}`], callTimeoutMs: 1000 }), StoreErrorCode.UNAVAILABLE);
    assert.ok(Date.now() - started < 5000, 'fails within the call deadline');
  });

  // Last: it kills the etcd the other tests share.
  it('reconnects after etcd is killed and restarted, and the watch resumes without losing or repeating a change', async () => {
    const prefix = freshPrefix();
    const options = { callTimeoutMs: 2000, maxReconnectDelayMs: 300 };
    const watcher = await connect(prefix, options);
    const writer = await connect(prefix, options);
    try {
      const start = await watcher.put('k/0', 0);
      const recorder = new WatchRecorder();
      const watch = watcher.watch('k/', start, recorder);
      const r1 = await writer.put('k/1', 1);
      await recorder.until('the change before the kill', () => recorder.events.length >= 1);
      await etcdOrFail(etcd).kill('SIGKILL');
      await rejectsWithCode(writer.put('k/never', 1), StoreErrorCode.UNAVAILABLE);
      await etcdOrFail(etcd).restart();
      // Written as soon as etcd answers, before the watch has necessarily reconnected.
      const r2 = await untilAvailable(() => writer.put('k/2', 2));
      const r3 = await writer.put('k/3', 3);
      const r4 = await untilAvailable(() => watcher.put('k/4', 4));
      await recorder.until('the changes after the restart', () => recorder.events.length >= 4);
      assert.deepEqual(
        recorder.events.map((e) => [e.key, e.revision]),
        [
          ['k/1', r1],
          ['k/2', r2],
          ['k/3', r3],
          ['k/4', r4],
        ],
      );
      assert.equal(await writer.get('k/never'), undefined);
      await watch.close();
    } finally {
      await watcher.close();
      await writer.close();
    }
  });
});

describe('startEtcd', () => {
  it('fails, rather than skips, when etcd is not installed', async () => {
    const saved = process.env['TRELLIS_ETCD_BIN'];
    process.env['TRELLIS_ETCD_BIN'] = '/nonexistent/etcd';
    try {
      await assert.rejects(startEtcd(), /etcd is not installed at \/nonexistent\/etcd: install the Debian package etcd-server/);
    } finally {
      if (saved === undefined) delete process.env['TRELLIS_ETCD_BIN'];
      else process.env['TRELLIS_ETCD_BIN'] = saved;
    }
  });
});

function etcdOrFail(etcd: TestEtcd | undefined): TestEtcd {
  assert.ok(etcd !== undefined, 'etcd did not start');
  return etcd;
}

/** Retries `run` while the store is unavailable (etcd coming back), for up to 15 s. */
async function untilAvailable<T>(run: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return await run();
    } catch (err) {
      if ((err as { code?: string }).code !== StoreErrorCode.UNAVAILABLE || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
