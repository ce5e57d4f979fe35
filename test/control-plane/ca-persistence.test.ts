/**
 * Runs the CaPersistence suite against the data directory and the shared store (on the file
 * store and on a real etcd), then what only the store has: sealed keys, a wrong encryption
 * key, a corrupt state, and the CA an earlier release shared.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DataDirCaPersistence } from '../../control-plane/ca-files.js';
import { StoreCaPersistence } from '../../control-plane/ca-store.js';
import { CertificateAuthority } from '../../control-plane/ca.js';
import { SecretBox } from '../../control-plane/secret-box.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import { FileStore } from '../../control-plane/store/file-store.js';
import type { Store } from '../../control-plane/store/store.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';
import { caPersistenceSuite } from './ca-persistence-suite.js';
import { silentLogger, tempDir } from './helpers.js';

const TD = 'persistence.test';

caPersistenceSuite('data directory', async () => {
  const dir = await tempDir();
  return { open: (): Promise<DataDirCaPersistence> => Promise.resolve(new DataDirCaPersistence(dir.path, silentLogger)), concurrent: false, dispose: () => dir.remove() };
});

/** A fixture of store persistences, each writer with its own data directory and store client. */
function storeFixture(connect: () => Promise<Store>): { open: (writerId: string) => Promise<StoreCaPersistence>; concurrent: boolean; dispose: () => Promise<void> } {
  const box = new SecretBox(randomBytes(32));
  const dirs: Array<{ remove: () => Promise<void> }> = [];
  const stores: Store[] = [];
  return {
    open: async (writerId) => {
      const dir = await tempDir();
      dirs.push(dir);
      const store = await connect();
      stores.push(store);
      return new StoreCaPersistence({ store, box, writerId, dataDir: dir.path, logger: silentLogger });
    },
    concurrent: true,
    dispose: async () => {
      for (const store of stores) await store.close();
      for (const dir of dirs) await dir.remove();
    },
  };
}

describe('CaPersistence on the file store', () => {
  caPersistenceSuite('store (file)', async () => {
    const dir = await tempDir();
    const store = await FileStore.open(dir.path);
    // One file store per directory: every writer shares the one instance (closed once).
    const fixture = storeFixture(() => Promise.resolve({ ...bind(store), close: () => Promise.resolve() }));
    return {
      ...fixture,
      dispose: async () => {
        await fixture.dispose();
        await store.close();
        await dir.remove();
      },
    };
  });
});

describe('CaPersistence on etcd', () => {
  let etcd: TestEtcd | undefined;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });
  const connectTo = (prefix: string) => (): Promise<Store> => EtcdStore.connect({ hosts: [etcd?.url ?? ''], prefix });
  const freshPrefix = (): string => `/trellis-ca-${randomBytes(6).toString('hex')}/`;

  caPersistenceSuite('store (etcd)', () => Promise.resolve(storeFixture(connectTo(freshPrefix()))));

  it('keeps the private keys sealed, opens them only with the same key, and names a corrupt state', async () => {
    const prefix = freshPrefix();
    const store = await connectTo(prefix)();
    const dir = await tempDir();
    const box = new SecretBox(randomBytes(32));
    try {
      const persistence = new StoreCaPersistence({ store, box, writerId: 'a', dataDir: dir.path, logger: silentLogger });
      const ca = await CertificateAuthority.open({ persistence, trustDomain: TD, logger: silentLogger, now: Date.now });
      await ca.addNextRoot();
      // The signing root is in the data directory too, as with the file store.
      assert.equal(await readFile(join(dir.path, 'ca.crt'), 'utf8'), ca.certPem);
      const keys = [await readFile(join(dir.path, 'ca.key'), 'utf8')];
      const stored = JSON.stringify(await store.list(''));
      assert.ok(stored.includes((ca.certPem.split('\n')[1] ?? 'x').trim()), 'the certificates are stored');
      assert.ok(!stored.includes('PRIVATE KEY'), 'no private key in plaintext');
      for (const key of keys) assert.ok(!stored.includes((key.split('\n')[1] ?? 'x').trim()), 'no key body in the store');

      const other = new StoreCaPersistence({ store, box: new SecretBox(randomBytes(32)), writerId: 'b', dataDir: dir.path, logger: silentLogger });
      await assert.rejects(other.load(), (err: unknown) => (err as { code?: string }).code === 'TRELLIS_ERR_ENCRYPTION_KEY');

      await store.put('ca/state', { signer: 'garbage' });
      const reader = new StoreCaPersistence({ store, box, writerId: 'c', dataDir: dir.path, logger: silentLogger });
      await assert.rejects(reader.load(), (err: unknown) => (err as { code?: string }).code === 'TRELLIS_ERR_STORE');
      await ca.close();
    } finally {
      await store.close();
      await dir.remove();
    }
  });

  it('deletes the ledger of a writer whose leaves all expired, and keeps one with a live leaf', async () => {
    const store = await connectTo(freshPrefix())();
    const dir = await tempDir();
    const box = new SecretBox(randomBytes(32));
    const open = (writerId: string): StoreCaPersistence => new StoreCaPersistence({ store, box, writerId, dataDir: dir.path, logger: silentLogger });
    try {
      const now = Date.now();
      await open('gone').saveLeaves([{ id: 's1', rootFingerprint: 'r', issuedAt: now - 2000, expiresAt: now - 1000 }]);
      await open('alive').saveLeaves([{ id: 's2', rootFingerprint: 'r', issuedAt: now, expiresAt: now + 60_000 }]);
      const writer = open('a');
      await writer.load();
      await writer.saveLeaves([]);
      assert.deepEqual((await store.list('ca/leaves/')).map(([key]) => key), ['ca/leaves/a', 'ca/leaves/alive']);
    } finally {
      await store.close();
      await dir.remove();
    }
  });

  it('takes the CA that an earlier release shared through the store', async () => {
    const store = await connectTo(freshPrefix())();
    const [old, dir] = [await tempDir(), await tempDir()];
    const box = new SecretBox(randomBytes(32));
    try {
      const legacy = await CertificateAuthority.loadOrCreate({ dataDir: old.path, trustDomain: TD, logger: silentLogger, now: Date.now });
      for (const name of ['ca.crt', 'ca.key']) {
        const key = `secrets/files/${name}`;
        await store.put(key, box.seal(key, await readFile(join(old.path, name), 'utf8')));
      }
      const persistence = new StoreCaPersistence({ store, box, writerId: 'a', dataDir: dir.path, logger: silentLogger });
      const ca = await CertificateAuthority.open({ persistence, trustDomain: TD, logger: silentLogger, now: Date.now });
      assert.equal(ca.fingerprint, legacy.fingerprint);
      assert.ok((await store.get('ca/state')) !== undefined, 'stored in the new form at once');
      await ca.close();
    } finally {
      await store.close();
      await old.remove();
      await dir.remove();
    }
  });
});

/** The store's methods bound to it, so that a writer's wrapper can leave its close out. */
function bind(store: Store): Store {
  return {
    get: (key) => store.get(key),
    getEntry: (key) => store.getEntry(key),
    put: (key, value, options) => store.put(key, value, options),
    delete: (key) => store.delete(key),
    list: (prefix) => store.list(prefix),
    listEntries: (prefix) => store.listEntries(prefix),
    transaction: (ops, options) => store.transaction(ops, options),
    watch: (prefix, from, listener) => store.watch(prefix, from, listener),
    grantLease: (ttl) => store.grantLease(ttl),
    close: () => store.close(),
  };
}
