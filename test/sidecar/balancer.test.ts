import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { BalancerEndpoint } from '../../sidecar/balancer/index.js';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';

const endpoint = (n: number, weight = 1): BalancerEndpoint => ({ sidecarId: `sc-${n}`, address: `127.0.0.1:${7000 + n}`, weight });
const keys = Array.from({ length: 5000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.7:${30000 + i}`);

function assignment(balancer: HashRingBalancer, service: string): Map<string, string> {
  return new Map(keys.map((key) => [key, balancer.candidates(service, key, 1)[0]?.sidecarId ?? '']));
}

describe('HashRingBalancer', () => {
  it('always gives the same endpoint for the same key', () => {
    const balancer = new HashRingBalancer();
    balancer.update('api', [endpoint(1), endpoint(2), endpoint(3)]);
    fc.assert(
      fc.property(fc.string(), (key) => {
        assert.deepEqual(balancer.candidates('api', key, 1), balancer.candidates('api', key, 1));
      }),
    );
  });

  it('spreads keys over every endpoint, in proportion to weight', () => {
    const balancer = new HashRingBalancer();
    balancer.update('api', [endpoint(1, 1), endpoint(2, 1), endpoint(3, 2)]);
    const counts = new Map<string, number>();
    for (const id of assignment(balancer, 'api').values()) counts.set(id, (counts.get(id) ?? 0) + 1);
    const share = (id: string) => (counts.get(id) ?? 0) / keys.length;
    assert.ok(share('sc-1') > 0.15 && share('sc-1') < 0.35, `sc-1 got ${share('sc-1')}`);
    assert.ok(share('sc-2') > 0.15 && share('sc-2') < 0.35, `sc-2 got ${share('sc-2')}`);
    assert.ok(share('sc-3') > 0.4 && share('sc-3') < 0.6, `sc-3 got ${share('sc-3')}`);
  });

  it('moves only the keys of an endpoint that leaves', () => {
    const balancer = new HashRingBalancer();
    balancer.update('api', [endpoint(1), endpoint(2), endpoint(3), endpoint(4)]);
    const before = assignment(balancer, 'api');
    balancer.update('api', [endpoint(1), endpoint(2), endpoint(4)]);
    const afterLeave = assignment(balancer, 'api');
    let moved = 0;
    for (const [key, id] of before) {
      if (id === 'sc-3') {
        assert.notEqual(afterLeave.get(key), 'sc-3');
        moved += 1;
      } else assert.equal(afterLeave.get(key), id, `key ${key} moved from ${id}`);
    }
    assert.ok(moved > 0);
  });

  it('gives distinct candidates in ring order, the pick first', () => {
    const balancer = new HashRingBalancer();
    balancer.update('api', [endpoint(1), endpoint(2), endpoint(3)]);
    for (const key of keys.slice(0, 200)) {
      const candidates = balancer.candidates('api', key, 3).map((e) => e.sidecarId);
      assert.equal(new Set(candidates).size, 3);
      assert.equal(candidates[0], balancer.candidates('api', key, 1)[0]?.sidecarId);
    }
  });

  it('has no candidates for an unknown or emptied service', () => {
    const balancer = new HashRingBalancer();
    assert.deepEqual(balancer.candidates('api', 'k'), []);
    balancer.update('api', [endpoint(1)]);
    balancer.update('api', []);
    assert.deepEqual(balancer.candidates('api', 'k'), []);
  });
});
