// The on-disk config cache of static stability: atomic, coalesced writes; a file that fails
// validation is refused with a code and never half-applied; a saved identity that is unusable
// is reported instead of crashing the sidecar.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { ConfigCache, ConfigCacheErrorCode, MAX_CONFIG_CACHE_BYTES } from '../../sidecar/config/config-cache.js';
import { decodeConfigEntries } from '../../sidecar/config/entries.js';
import type { ConfigEntry } from '../../sidecar/config/mesh-config.js';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';
import { Credentials } from '../../sidecar/identity/credentials.js';
import { IDENTITY_CORRUPT, keepStateIn, loadUsableCredentials, SidecarStateDir } from '../../sidecar/identity/state-dir.js';

const endpoint = (id: string, port: number) => ({ sidecarId: id, service: 'api', address: `127.0.0.1:${port}`, zone: 'z', weight: 1, healthy: true });

function entriesAt(version: number): ConfigEntry[] {
  return decodeConfigEntries([
    ['endpoint/api/sc-1', endpoint('sc-1', 7000 + version)],
    ['policy/default', { action: 'deny' }],
    ['policy/rule/web/api', { from: 'web', to: 'api', action: 'allow' }],
  ]);
}

/** A pino logger whose records are kept, to read the codes it logged. */
function recordingLogger(): { logger: Logger; records: { level: number; code?: string; msg: string }[] } {
  const records: { level: number; code?: string; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') records.push(JSON.parse(line) as { level: number; code?: string; msg: string });
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), records };
}

const silent = pino({ level: 'silent' });

describe('ConfigCache', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-cache-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the config atomically (mode 0600, no temporary left) and reads back the same entries', async () => {
    const config = new MeshConfig();
    config.applySnapshot(7, entriesAt(7));
    const path = join(dir, 'round-trip', 'config.json');
    const cache = new ConfigCache({ path, source: config, logger: silent });
    const written = once(cache, 'written');
    cache.changed();
    assert.deepEqual(await written, [7]);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dir, 'round-trip')), ['config.json']);

    const loaded = await new ConfigCache({ path, source: new MeshConfig(), logger: silent }).load();
    assert.equal(loaded?.version, 7);
    assert.deepEqual(loaded?.entries, config.entries());
    await cache.close();
  });

  it('coalesces a burst of versions into one write of the latest', async () => {
    const config = new MeshConfig();
    const path = join(dir, 'burst.json');
    const cache = new ConfigCache({ path, source: config, logger: silent, minWriteIntervalMs: 200 });
    config.applySnapshot(1, entriesAt(1));
    const first = once(cache, 'written');
    cache.changed();
    assert.deepEqual(await first, [1]);
    const second = once(cache, 'written');
    for (let version = 2; version <= 50; version += 1) {
      config.applySnapshot(version, entriesAt(version));
      cache.changed();
    }
    assert.deepEqual(await second, [50]);
    assert.equal(cache.writes, 2);
    assert.equal((await cache.load())?.version, 50);
    await cache.close();
    assert.equal(cache.writes, 2, 'nothing left to write at close');
  });

  it('writes what is pending when closed, and nothing after', async () => {
    const config = new MeshConfig();
    const path = join(dir, 'close.json');
    const cache = new ConfigCache({ path, source: config, logger: silent, minWriteIntervalMs: 60_000 });
    config.applySnapshot(3, entriesAt(3));
    cache.changed();
    await cache.close();
    assert.equal(cache.writes, 1);
    assert.equal((await cache.load())?.version, 3);
    config.applySnapshot(4, entriesAt(4));
    cache.changed();
    assert.equal((await cache.load())?.version, 3);
  });

  describe('refuses a damaged file with TRELLIS_ERR_CONFIG_CACHE_CORRUPT', () => {
    async function validFile(name: string): Promise<string> {
      const config = new MeshConfig();
      config.applySnapshot(9, entriesAt(9));
      const path = join(dir, name);
      const cache = new ConfigCache({ path, source: config, logger: silent });
      cache.changed();
      await cache.close();
      return path;
    }
    const refused = (path: string) => assert.rejects(new ConfigCache({ path, source: new MeshConfig(), logger: silent }).load(), { code: ConfigCacheErrorCode.CORRUPT });

    it('a truncated file', async () => {
      const path = await validFile('truncated.json');
      const text = await readFile(path, 'utf8');
      await writeFile(path, text.slice(0, text.length / 2));
      await refused(path);
    });

    it('a file of another format', async () => {
      const path = await validFile('format.json');
      const file = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
      await writeFile(path, JSON.stringify({ ...file, format: 2 }));
      await refused(path);
      await writeFile(path, JSON.stringify({ version: 9, entries: file['entries'] }));
      await refused(path);
    });

    it('a value changed behind the checksum', async () => {
      const path = await validFile('tampered.json');
      const text = await readFile(path, 'utf8');
      const tampered = text.replace('127.0.0.1:7009', '127.0.0.1:7010');
      assert.notEqual(tampered, text);
      await writeFile(path, tampered);
      await refused(path);
    });

    it('an entry that fails its schema, even with a matching checksum', async () => {
      const path = join(dir, 'bad-entry.json');
      const bad: ConfigEntry = { kind: 'endpoint', key: 'endpoint/api/sc-1', value: { ...endpoint('sc-1', 7001), weight: 0 } };
      const cache = new ConfigCache({ path, source: { version: 2, entries: () => [bad] }, logger: silent });
      cache.changed();
      await cache.close();
      assert.equal(cache.writes, 1);
      await refused(path);
    });

    it('a file over the size limit, before reading it', async () => {
      const path = join(dir, 'huge.json');
      await writeFile(path, '');
      await truncate(path, MAX_CONFIG_CACHE_BYTES + 1);
      await refused(path);
    });
  });

  it('reports an unreadable or unwritable path with TRELLIS_ERR_CONFIG_CACHE_IO', async () => {
    const directory = join(dir, 'a-directory');
    await mkdir(directory);
    await assert.rejects(new ConfigCache({ path: directory, source: new MeshConfig(), logger: silent }).load(), { code: ConfigCacheErrorCode.IO });

    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a directory');
    const config = new MeshConfig();
    config.applySnapshot(1, entriesAt(1));
    const cache = new ConfigCache({ path: join(blocker, 'config.json'), source: config, logger: silent });
    const failed = once(cache, 'write-failed');
    cache.changed();
    const [error] = (await failed) as [{ code: string }];
    assert.equal(error.code, ConfigCacheErrorCode.IO);
    assert.equal(cache.writes, 0);
    await cache.close();
  });
});

describe('keepStateIn', () => {
  let dir: string;
  const credentials = new Credentials({ trustDomain: 'trellis.local', service: 'api', sidecarId: 'sc-1', privateKeyPem: '', certPem: '', caPems: [], expiresAt: Date.now() + 3_600_000 });
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-state-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts from the cached config, says so, and follows the control plane after', async () => {
    const stateDir = new SidecarStateDir(join(dir, 'good'));
    const before = new MeshConfig();
    before.applySnapshot(5, entriesAt(5));
    const seed = new ConfigCache({ path: stateDir.configPath, source: before, logger: silent });
    seed.changed();
    await seed.close();

    const { logger, records } = recordingLogger();
    const config = new MeshConfig();
    const kept = await keepStateIn(stateDir, config, credentials, logger);
    assert.equal(config.version, 5);
    assert.equal(kept.cachedVersion, 5);
    assert.equal(kept.servingFromCache, true);
    assert.deepEqual(config.endpoints('api').map((e) => e.address), ['127.0.0.1:7005']);
    assert.equal(config.policy.allows('web', 'api'), true);
    assert.equal(config.policy.allows('intruder', 'api'), false);
    assert.ok(records.some((r) => r.msg === 'serving from the cached config until the control plane answers'));

    config.applySnapshot(6, entriesAt(6));
    assert.equal(kept.servingFromCache, false);
    await kept.close();
    const reread = await new ConfigCache({ path: stateDir.configPath, source: new MeshConfig(), logger: silent }).load();
    assert.equal(reread?.version, 6);
  });

  it('ignores a corrupt cache with its code, and starts empty', async () => {
    const stateDir = new SidecarStateDir(join(dir, 'corrupt'));
    await mkdir(stateDir.dir);
    await writeFile(stateDir.configPath, '{"format":1,"version":');
    const { logger, records } = recordingLogger();
    const config = new MeshConfig();
    const kept = await keepStateIn(stateDir, config, credentials, logger);
    assert.equal(config.version, 0);
    assert.equal(kept.cachedVersion, undefined);
    assert.equal(kept.servingFromCache, false);
    assert.deepEqual(records.filter((r) => r.code !== undefined).map((r) => r.code), [ConfigCacheErrorCode.CORRUPT]);
    await kept.close();
  });
});

describe('SidecarStateDir identity', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-identity-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses an unusable identity with TRELLIS_ERR_IDENTITY_CORRUPT, and loadUsableCredentials reports it', async () => {
    const stateDir = new SidecarStateDir(dir);
    assert.equal(await stateDir.loadCredentials(), undefined, 'no identity yet');
    await writeFile(join(dir, 'identity.json'), '{"trustDomain": "trellis.local", "service": ');
    await assert.rejects(stateDir.loadCredentials(), { code: IDENTITY_CORRUPT });

    const { logger, records } = recordingLogger();
    assert.equal(await loadUsableCredentials(stateDir, logger), undefined);
    assert.deepEqual(records.map((r) => r.code), [IDENTITY_CORRUPT]);
  });

  it('keeps the private key in a file of mode 0600 in a directory of mode 0700, and nowhere else', async () => {
    const stateDirPath = join(dir, 'fresh');
    const pem = (label: string, body = 'Ym9keQ'): string => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
    const privateKeyPem = pem('PRIVATE KEY', 'c2VjcmV0LWtleS1ib2R5');
    const stateDir = new SidecarStateDir(stateDirPath);
    await stateDir.saveCredentials({ trustDomain: 'trellis.local', service: 'api', sidecarId: 'sc-1', privateKeyPem, certPem: pem('CERTIFICATE'), caPems: [pem('CERTIFICATE')], expiresAt: Date.now() + 60_000 });
    assert.equal((await stat(stateDirPath)).mode & 0o777, 0o700);
    assert.equal((await stat(join(stateDirPath, 'sidecar.key'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(stateDirPath, 'sidecar.key'), 'utf8'), privateKeyPem);
    for (const name of await readdir(stateDirPath)) {
      if (name !== 'sidecar.key') assert.ok(!(await readFile(join(stateDirPath, name), 'utf8')).includes('c2VjcmV0LWtleS1ib2R5'), `${name} holds the key`);
    }
    assert.equal((await stateDir.loadCredentials())?.privateKeyPem, privateKeyPem);
  });
});
