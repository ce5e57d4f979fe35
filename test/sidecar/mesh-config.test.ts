import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeConfigEntries, typedEntry } from '../../sidecar/config/entries.js';
import { MeshConfig } from '../../sidecar/config/mesh-config.js';

const endpoint = (id: string, healthy = true) => ({ sidecarId: id, service: 'api', address: '127.0.0.1:7001', zone: 'z', weight: 1, healthy });

describe('MeshConfig', () => {
  it('applies a snapshot, then deltas in order, and refuses a delta with a gap', () => {
    const config = new MeshConfig();
    const changed: string[][] = [];
    config.on('services', (services: Set<string>) => changed.push([...services]));
    config.applySnapshot(3, decodeConfigEntries([['endpoint/api/sc-1', endpoint('sc-1')], ['policy/default', { action: 'deny' }]]));
    assert.equal(config.version, 3);
    assert.deepEqual(config.endpoints('api').map((e) => e.sidecarId), ['sc-1']);
    assert.equal(config.policy.allows('web', 'api'), false);

    assert.equal(config.applyDelta(4, 3, [{ key: 'endpoint/api/sc-2', entry: typedEntry('endpoint/api/sc-2', endpoint('sc-2')) }]), true);
    assert.deepEqual(config.endpoints('api').map((e) => e.sidecarId).sort(), ['sc-1', 'sc-2']);
    assert.equal(config.applyDelta(6, 5, [{ key: 'endpoint/api/sc-1', entry: undefined }]), false, 'gap: 4 → (5) → 6');
    assert.equal(config.version, 4);
    assert.equal(config.applyDelta(5, 4, [{ key: 'endpoint/api/sc-1', entry: undefined }]), true);
    assert.deepEqual(config.endpoints('api').map((e) => e.sidecarId), ['sc-2']);
    assert.deepEqual(changed, [['api'], ['api'], ['api']]);
  });

  it('leaves unhealthy endpoints out of the routable set', () => {
    const config = new MeshConfig();
    config.applySnapshot(1, decodeConfigEntries([['endpoint/api/sc-1', endpoint('sc-1', false)]]));
    assert.deepEqual(config.endpoints('api'), []);
  });

  it('rejects an entry whose key does not match its value', () => {
    assert.throws(() => decodeConfigEntries([['endpoint/api/sc-9', endpoint('sc-1')]]), { code: 'TRELLIS_ERR_INVALID' });
  });
});
