// A sidecar's reports of one endpoint take effect in the order it sent them, however quickly
// they follow each other: the last one sent is the one the mesh sees.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ConfigState } from '../../control-plane/config-state.js';
import { Registry } from '../../control-plane/registry.js';
import { ReplicaLease } from '../../control-plane/replica-lease.js';
import { FileStore } from '../../control-plane/store/file-store.js';
import type { EndpointValue } from '../../proto/control.js';
import { tempDir } from './helpers.js';

const logger = pino({ level: 'silent' });

describe('registry writes of one endpoint', () => {
  it('keeps the last of health reports sent back to back, each within one store write of the last', async () => {
    const dir = await tempDir();
    const store = await FileStore.open(dir.path);
    const config = await ConfigState.load(store, logger);
    const lease = await ReplicaLease.grant(store, 15_000, logger);
    const registry = new Registry(config, lease, 15_000, logger);
    try {
      const session = {};
      const key = 'endpoint/cache/sc-1';
      await registry.register(session, { sidecarId: 'sc-1', service: 'cache', address: '127.0.0.1:7512', zone: 'z1', weight: 1 });
      // Not awaited in between, as a session handles its messages: unhealthy, then healthy again.
      const reports = [false, true, false, false, true, true, false, true];
      await Promise.all(reports.map((healthy) => registry.setHealthy(session, 'cache', 'sc-1', healthy)));
      assert.equal((config.get(key) as EndpointValue).healthy, true);
      await Promise.all([registry.setHealthy(session, 'cache', 'sc-1', false), registry.setHealthy(session, 'cache', 'sc-1', true), registry.setHealthy(session, 'cache', 'sc-1', false)]);
      assert.equal((config.get(key) as EndpointValue).healthy, false);
      // A removal queued behind a write is not undone by it.
      const pending = registry.setHealthy(session, 'cache', 'sc-1', true);
      await Promise.all([pending, registry.deregister(session, 'cache', 'sc-1')]);
      assert.equal(config.get(key), undefined);
    } finally {
      registry.close();
      lease.close();
      await config.close();
      await store.close();
      await dir.remove();
    }
  });
});
