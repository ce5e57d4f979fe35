import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancerEndpoint } from '../../sidecar/balancer/index.js';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';

const keys = Array.from({ length: 20_000 }, (_, i) => `10.${(i >> 8) & 255}.${i & 255}.9:${20_000 + i}`);

/** Share of `keys` each endpoint owns on a ring of `weights`. */
function shares(weights: number[]): number[] {
  const endpoints: BalancerEndpoint[] = weights.map((weight, i) => ({ sidecarId: `sc-${i}`, address: `127.0.0.1:${7000 + i}`, weight }));
  const balancer = new HashRingBalancer();
  balancer.update('api', endpoints);
  const counts = new Map<string, number>();
  for (const key of keys) {
    const id = balancer.candidates('api', key, 1)[0]?.sidecarId ?? '';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return endpoints.map((e) => (counts.get(e.sidecarId) ?? 0) / keys.length);
}

describe('weights on the ring', () => {
  for (const weights of [
    [1, 3],
    [1, 4, 5],
    [2, 2, 2, 10],
    [1, 20],
  ]) {
    it(`gives endpoints of weights ${weights.join(':')} their share of keys`, () => {
      const total = weights.reduce((a, b) => a + b, 0);
      shares(weights).forEach((share, i) => {
        const expected = weights[i]! / total;
        // Ketama's virtual nodes give shares within a few points of the weights.
        assert.ok(Math.abs(share - expected) < 0.04, `weight ${weights[i]} got ${share.toFixed(3)}, expected ${expected.toFixed(3)}`);
      });
    });
  }

  it('keeps every endpoint on the ring whatever the weight spread', () => {
    const tiny = shares([1, 1000]);
    assert.ok(tiny[0]! > 0, 'the light endpoint owns some keys');
    assert.ok(tiny[0]! < 0.01);
  });
});
