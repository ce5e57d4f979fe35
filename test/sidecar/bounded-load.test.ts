import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { BalancerEndpoint, StreamLease } from '../../sidecar/balancer/index.js';
import { HashRingBalancer, loadBound } from '../../sidecar/balancer/index.js';

const endpoint = (n: number, weight = 1): BalancerEndpoint => ({ sidecarId: `sc-${n}`, address: `127.0.0.1:${7000 + n}`, weight });

/** Active streams per endpoint, from the balancer's public stats. */
function loads(balancer: HashRingBalancer): Map<string, number> {
  return new Map(balancer.endpointStats('api').map((s) => [s.sidecarId, s.activeStreams]));
}

function open(balancer: HashRingBalancer, key: string): StreamLease {
  const picked = balancer.pick('api', key);
  assert.ok(picked.ok, 'a pick always succeeds without stream limits');
  return picked.lease;
}

describe('bounded-load consistent hashing', () => {
  it('computes the bound with the new stream counted, and without floating-point overshoot', () => {
    assert.equal(loadBound(1, 0, 3, 1.25), 1);
    assert.equal(loadBound(1, 2, 2, 1.25), 2); // 1.25 × 3 / 2 = 1.875
    assert.equal(loadBound(1, 4, 2, 1.2), 3); // 1.2 × 5 / 2 = 3, not 3.0000000000000004
    assert.equal(loadBound(3, 9, 4, 1.25), 10); // weight 3 of 4: 1.25 × 10 × 0.75 = 9.375
  });

  it('lets a hot key spill over to the next endpoints once its own is above c × the mean', () => {
    let skips = 0;
    const balancer = new HashRingBalancer({ loadFactor: 1.25, observer: { endpointEjected: () => undefined, boundedLoadSkipped: () => (skips += 1) } });
    balancer.update('api', [endpoint(1), endpoint(2), endpoint(3)]);
    const owner = balancer.candidates('api', 'hot', 1)[0]!.sidecarId;
    const ringOrder = balancer.candidates('api', 'hot', 3).map((e) => e.sidecarId);
    const leases: StreamLease[] = [];
    for (let total = 1; total <= 60; total++) {
      leases.push(open(balancer, 'hot'));
      const counts = loads(balancer);
      const bound = Math.ceil((1.25 * total) / 3);
      for (const [id, count] of counts) assert.ok(count <= bound, `${id} carries ${count} of ${total} streams, above ${bound}`);
      if (total === 1) assert.equal(leases.at(-1)!.endpoint.sidecarId, owner, 'a cold ring gives the key owner');
    }
    const counts = loads(balancer);
    assert.equal(counts.get(owner), Math.ceil((1.25 * 60) / 3), 'the owner is filled up to its bound');
    assert.ok((counts.get(ringOrder[1]!) ?? 0) > 0, 'the spill goes to the next endpoint on the ring');
    assert.ok(skips > 0, 'skips are reported');

    // Streams end: the key goes back to its owner.
    for (const lease of leases) lease.release();
    for (const lease of leases) lease.release(); // release is idempotent
    assert.deepEqual([...loads(balancer).values()], [0, 0, 0]);
    assert.equal(open(balancer, 'hot').endpoint.sidecarId, owner);
  });

  it('never takes an endpoint above ceil(c × its weighted share), whatever the keys, weights and stream ends', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 6 }),
        fc.constantFrom(1, 1.1, 1.25, 1.5, 2),
        fc.array(fc.oneof(fc.record({ open: fc.constantFrom('hot', 'warm', 'k1', 'k2', 'k3') }), fc.record({ close: fc.nat() })), { maxLength: 200 }),
        (weights, loadFactor, steps) => {
          const balancer = new HashRingBalancer({ loadFactor });
          const endpoints = weights.map((weight, i) => endpoint(i, weight));
          const totalWeight = weights.reduce((a, b) => a + b, 0);
          balancer.update('api', endpoints);
          const open: StreamLease[] = [];
          for (const step of steps) {
            if ('close' in step) {
              if (open.length > 0) open.splice(step.close % open.length, 1)[0]!.release();
              continue;
            }
            const lease = balancer.pick('api', step.open);
            assert.ok(lease.ok);
            open.push(lease.lease);
            const counts = loads(balancer);
            const picked = lease.lease.endpoint;
            const bound = Math.ceil((loadFactor * open.length * picked.weight) / totalWeight - 1e-9);
            assert.ok((counts.get(picked.sidecarId) ?? 0) <= bound, `picked ${picked.sidecarId} now carries ${counts.get(picked.sidecarId)} > ${bound}`);
          }
        },
      ),
    );
  });

  it('with streams only opening, no endpoint ever exceeds ceil(c × mean)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.array(fc.constantFrom('a', 'b', 'hot'), { minLength: 1, maxLength: 150 }), (size, keys) => {
        const balancer = new HashRingBalancer({ loadFactor: 1.25 });
        balancer.update('api', Array.from({ length: size }, (_, i) => endpoint(i)));
        keys.forEach((key, i) => {
          open(balancer, key);
          const max = Math.max(...loads(balancer).values());
          assert.ok(max <= Math.ceil((1.25 * (i + 1)) / size), `max ${max} with ${i + 1} streams over ${size}`);
        });
      }),
    );
  });

  it('gives every endpoint a place on the ring, even at weight 1 next to 1000', () => {
    const balancer = new HashRingBalancer();
    balancer.update('api', [endpoint(1, 1), endpoint(2, 1000)]);
    const ids = new Set(balancer.candidates('api', 'any', 2).map((e) => e.sidecarId));
    assert.deepEqual(ids, new Set(['sc-1', 'sc-2']));
  });
});
