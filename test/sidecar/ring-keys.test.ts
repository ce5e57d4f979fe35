// Ring keys are strings from outside (a `fixed:KEY` hash policy, a caller's address): keys that
// name properties of Object.prototype must pick the same endpoint as any other key and leave
// the process's objects alone.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancerEndpoint } from '../../sidecar/balancer/index.js';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';

const PROTOTYPE_KEYS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__'];

function balancerOf(count: number): HashRingBalancer {
  const endpoints: BalancerEndpoint[] = Array.from({ length: count }, (_, i) => ({ sidecarId: `sc-${i}`, address: `127.0.0.1:${7000 + i}`, weight: 1 }));
  const balancer = new HashRingBalancer();
  balancer.update('api', endpoints);
  return balancer;
}

describe('ring keys named like Object.prototype properties', () => {
  it('get the owner the ring walk starts at, every time, without touching Object.prototype', () => {
    const prototypeKeysBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const balancer = balancerOf(5);
    for (const key of PROTOTYPE_KEYS) {
      const walkStart = balancer.candidates('api', key, 5)[0]?.sidecarId;
      for (let round = 0; round < 3; round++) {
        assert.equal(balancer.candidates('api', key, 1)[0]?.sidecarId, walkStart, `key ${key}, round ${round}`);
        const pick = balancer.pick('api', key);
        assert.ok(pick.ok);
        assert.equal(pick.lease.endpoint.sidecarId, walkStart, `pick for key ${key}, round ${round}`);
        pick.lease.release();
      }
    }
    assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), prototypeKeysBefore);
    assert.equal(({} as { value?: unknown }).value, undefined);
    assert.equal((Object as unknown as { value?: unknown }).value, undefined);
  });
});
