// Inbound stream quotas: per peer identity across its links, and per process; slots come back on release.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../proto/errors.js';
import { DEFAULT_MAX_INBOUND_STREAMS, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER, StreamQuota } from '../../sidecar/forward/stream-quota.js';
import { ListenerGuard } from '../../sidecar/links/listener-guard.js';

describe('StreamQuota', () => {
  it('has the documented defaults', () => {
    const quota = new StreamQuota();
    assert.equal(quota.maxStreams, DEFAULT_MAX_INBOUND_STREAMS);
    assert.equal(quota.maxStreamsPerPeer, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER);
    assert.deepEqual([DEFAULT_MAX_INBOUND_STREAMS, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER], [16_000, 10_000]);
  });

  it('refuses a peer beyond its share, then anyone beyond the total, and gives slots back once', () => {
    const quota = new StreamQuota({ maxStreams: 5, maxStreamsPerPeer: 3 });
    const grants = [quota.acquire('svc/a'), quota.acquire('svc/a'), quota.acquire('svc/a')];
    assert.ok(grants.every((grant) => grant.granted));
    assert.deepEqual(quota.acquire('svc/a'), { granted: false, reason: 'too-many-streams-from-peer' });
    assert.ok(quota.acquire('svc/b').granted);
    assert.ok(quota.acquire('gw/eu/edge').granted);
    assert.deepEqual(quota.acquire('svc/c'), { granted: false, reason: 'too-many-streams' });
    const first = grants[0];
    assert.ok(first?.granted);
    first.release();
    first.release();
    assert.equal(quota.active(), 4);
    assert.equal(quota.active('svc/a'), 2);
    assert.ok(quota.acquire('svc/c').granted);
    assert.deepEqual(quota.acquire('svc/a'), { granted: false, reason: 'too-many-streams' });
  });

  it('rejects limits that are not whole numbers >= 1', () => {
    assert.throws(() => new StreamQuota({ maxStreams: 0 }), (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_INVALID');
    assert.throws(() => new ListenerGuard({ maxLinksPerPeer: 1.5 }), (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_INVALID');
  });
});
