/**
 * The control plane's state shared by replicas on one real etcd: the config cache and its
 * versions, endpoints held by replica leases, the leader election and the sweep of entries no
 * lease holds. Each "replica" here is its own store connection, as separate processes have.
 */
import assert from 'node:assert/strict';
import { once, EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ConfigChange, EndpointValue } from '../../proto/control.js';
import { ConfigState } from '../../control-plane/config-state.js';
import { LeaderElection } from '../../control-plane/leader-election.js';
import { OrphanSweeper } from '../../control-plane/orphan-sweeper.js';
import { Registry } from '../../control-plane/registry.js';
import { ReplicaLease } from '../../control-plane/replica-lease.js';
import { EtcdStore } from '../../control-plane/store/etcd-store.js';
import type { TestEtcd } from '../support/etcd.js';
import { startEtcd } from '../support/etcd.js';

const logger = pino({ level: 'silent' });
const LEASE_TTL_MS = 1000;

/** One replica's state: its own etcd connection, config cache and lease. */
interface Replica {
  store: EtcdStore;
  config: ConfigState;
  lease: ReplicaLease;
  registry: Registry;
  /** Every change its config heard of, with the version it came with. */
  heard: Array<{ version: number; changes: readonly ConfigChange[] }>;
  events: EventEmitter;
  close(): Promise<void>;
}

async function replica(url: string, prefix: string): Promise<Replica> {
  const store = await EtcdStore.connect({ hosts: [url], prefix });
  const config = await ConfigState.load(store, logger);
  const lease = await ReplicaLease.grant(store, LEASE_TTL_MS, logger);
  const registry = new Registry(config, lease, LEASE_TTL_MS, logger);
  const heard: Replica['heard'] = [];
  const events = new EventEmitter();
  config.onChange((version, changes) => {
    heard.push({ version, changes });
    events.emit('change');
  });
  return {
    store,
    config,
    lease,
    registry,
    heard,
    events,
    async close() {
      registry.close();
      lease.close();
      await config.close();
      await store.close();
    },
  };
}

/** Resolves once `replica` has heard a change for which `match` holds; returns its version. */
async function heardChange(r: Replica, match: (change: ConfigChange) => boolean): Promise<number> {
  for (;;) {
    const found = r.heard.find((h) => h.changes.some(match));
    if (found !== undefined) return found.version;
    await once(r.events, 'change');
  }
}

function endpoint(service: string, sidecarId: string, address: string): Omit<EndpointValue, 'healthy'> {
  return { service, sidecarId, address, zone: 'default', weight: 1 };
}

describe('state shared by control-plane replicas on etcd', () => {
  let etcd: TestEtcd;
  const freshPrefix = (): string => `/trellis-replicas-${randomBytes(6).toString('hex')}/`;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  it('gives every replica the same versions for the same changes, its own and the others\'', async () => {
    const prefix = freshPrefix();
    const a = await replica(etcd.url, prefix);
    const b = await replica(etcd.url, prefix);
    try {
      const version = await a.config.apply([['policy/default', { action: 'deny' }]]);
      assert.equal(a.config.version, version);
      assert.equal(await heardChange(b, ([key, value]) => key === 'policy/default' && JSON.stringify(value) === '{"action":"deny"}'), version);
      assert.equal(b.config.version, version);
      assert.deepEqual(b.config.get('policy/default'), { action: 'deny' });
      // A write that changes nothing takes no version.
      assert.equal(await b.config.apply([['policy/default', { action: 'deny' }]]), version);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('seals a change the store made by itself (a lease that ran out) with one version every replica shares', async () => {
    const prefix = freshPrefix();
    const a = await replica(etcd.url, prefix);
    const b = await replica(etcd.url, prefix);
    try {
      const lease = await a.store.grantLease(LEASE_TTL_MS);
      await a.config.apply([['endpoint/db/sc-1', { ...endpoint('db', 'sc-1', '127.0.0.1:1'), healthy: true }]], { leases: new Map([['endpoint/db/sc-1', lease]]) });
      // Nobody renews the lease: etcd deletes the key, and no writer gave that a version.
      const gone = (change: ConfigChange): boolean => change[0] === 'endpoint/db/sc-1' && change[1] === null;
      const [atA, atB] = await Promise.all([heardChange(a, gone), heardChange(b, gone)]);
      assert.equal(atA, atB);
      assert.equal(a.config.get('endpoint/db/sc-1'), undefined);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('keeps an endpoint that moved to another replica when the first replica\'s session ends', async () => {
    const prefix = freshPrefix();
    const a = await replica(etcd.url, prefix);
    const b = await replica(etcd.url, prefix);
    try {
      const atA = {};
      const atB = {};
      await a.registry.register(atA, endpoint('db', 'sc-2', '127.0.0.1:2'));
      await heardChange(b, ([key]) => key === 'endpoint/db/sc-2');
      // The sidecar reconnects to B and registers the same endpoint again, then A sees its session end.
      await b.registry.register(atB, endpoint('db', 'sc-2', '127.0.0.1:2'));
      a.registry.release(atA, 'db', 'sc-2');
      await new Promise((resolve) => setTimeout(resolve, LEASE_TTL_MS * 3));
      assert.ok(b.config.get('endpoint/db/sc-2') !== undefined, 'A removed an endpoint B holds');
      assert.ok(a.config.get('endpoint/db/sc-2') !== undefined);
      // Once B's session ends too, the endpoint goes a lease time later.
      b.registry.release(atB, 'db', 'sc-2');
      await heardChange(a, ([key, value]) => key === 'endpoint/db/sc-2' && value === null);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('removes the endpoints of a replica that died, a lease time later, unless their sidecars moved', async () => {
    const prefix = freshPrefix();
    const dying = await replica(etcd.url, prefix);
    const survivor = await replica(etcd.url, prefix);
    try {
      await dying.registry.register({}, endpoint('db', 'sc-3', '127.0.0.1:3'));
      await dying.registry.register({}, endpoint('db', 'sc-4', '127.0.0.1:4'));
      await heardChange(survivor, ([key]) => key === 'endpoint/db/sc-4');
      await survivor.registry.register({}, endpoint('db', 'sc-4', '127.0.0.1:4'));
      // The dying replica stops renewing its lease without a word.
      dying.lease.close();
      await heardChange(survivor, ([key, value]) => key === 'endpoint/db/sc-3' && value === null);
      assert.ok(survivor.config.get('endpoint/db/sc-4') !== undefined, 'the endpoint that moved stays');
    } finally {
      await dying.close();
      await survivor.close();
    }
  });

  it('elects one leader, and another once it closes', async () => {
    const prefix = freshPrefix();
    const stores = await Promise.all([0, 1].map(() => EtcdStore.connect({ hosts: [etcd.url], prefix })));
    const elections = stores.map((store, i) => new LeaderElection({ store, replicaId: `r${i}`, ttlMs: LEASE_TTL_MS, logger }));
    const changed = new EventEmitter();
    for (const election of elections) election.onChange(() => changed.emit('change'));
    try {
      for (const election of elections) election.start();
      while (!elections.some((e) => e.isLeader)) await once(changed, 'change');
      const leader = elections.findIndex((e) => e.isLeader);
      assert.equal(elections.filter((e) => e.isLeader).length, 1);
      await elections[leader]!.close();
      const other = elections[1 - leader]!;
      while (!other.isLeader) await once(changed, 'change');
    } finally {
      for (const election of elections) await election.close();
      for (const store of stores) await store.close();
    }
  });

  it('sweeps an endpoint no lease holds after two sweeps, and leaves leased ones alone', async () => {
    const prefix = freshPrefix();
    const r = await replica(etcd.url, prefix);
    try {
      await r.config.apply([['endpoint/db/sc-5', { ...endpoint('db', 'sc-5', '127.0.0.1:5'), healthy: true }]]);
      await r.registry.register({}, endpoint('db', 'sc-6', '127.0.0.1:6'));
      const sweeper = new OrphanSweeper({ store: r.store, config: r.config, prefixes: ['endpoint/'], intervalMs: 60_000, logger });
      assert.equal(await sweeper.sweep(), 0, 'the first sweep only notes suspects');
      assert.equal(await sweeper.sweep(), 1);
      assert.equal(r.config.get('endpoint/db/sc-5'), undefined);
      assert.ok(r.config.get('endpoint/db/sc-6') !== undefined);
    } finally {
      await r.close();
    }
  });
});
