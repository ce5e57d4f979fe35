import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PathSelector } from '../../sidecar/tunnel/path-selector.js';

const viaGa1 = ['a/ga1', 'c/gc'];
const viaGa2 = ['a/ga2', 'c/gc'];
const long = ['a/ga1', 'b/gb', 'c/gc'];

describe('path selector', () => {
  it('tries shorter paths first and spreads sidecar pairs over first hops of equal standing', () => {
    const selector = new PathSelector();
    const firstHops = new Set<string>();
    for (let pair = 0; pair < 40; pair++) {
      const ordered = selector.order([long, viaGa1, viaGa2], `sc-src>sc-${pair}`);
      assert.deepEqual(ordered[2], long);
      firstHops.add(ordered[0]?.[0] ?? '');
    }
    assert.deepEqual([...firstHops].sort(), ['a/ga1', 'a/ga2']);
  });

  it('keeps one pair on the same path while nothing changes', () => {
    const selector = new PathSelector();
    const first = selector.order([viaGa1, viaGa2], 'sc-a>sc-b')[0];
    for (let i = 0; i < 10; i++) assert.deepEqual(selector.order([viaGa1, viaGa2], 'sc-a>sc-b')[0], first);
  });

  it('puts a first hop that failed last, and brings it back after a success', () => {
    const selector = new PathSelector();
    selector.failed('a/ga1');
    for (let pair = 0; pair < 20; pair++) assert.deepEqual(selector.order([viaGa1, viaGa2, long], `sc-src>sc-${pair}`)[0], viaGa2);
    // Even a longer path goes before a recently failed first hop.
    const longViaGa2 = ['a/ga2', 'b/gb', 'c/gc'];
    assert.deepEqual(selector.order([viaGa1, longViaGa2], 'sc-x>sc-y'), [longViaGa2, viaGa1]);
    selector.succeeded('a/ga1');
    assert.ok(Array.from({ length: 20 }, (_, pair) => selector.order([viaGa1, viaGa2], `sc-src>sc-${pair}`)[0]?.[0]).includes('a/ga1'));
  });

  it('prefers a clearly faster first hop, but does not reorder on small or single differences', () => {
    const selector = new PathSelector();
    selector.observeRtt('a/ga1', 1.0);
    selector.observeRtt('a/ga2', 1.2);
    const spread = new Set(Array.from({ length: 40 }, (_, pair) => selector.order([viaGa1, viaGa2], `sc-src>sc-${pair}`)[0]?.[0]));
    assert.equal(spread.size, 2, 'a 0.2 ms difference is noise: both gateways stay in use');
    for (let i = 0; i < 10; i++) selector.observeRtt('a/ga2', 40);
    for (let pair = 0; pair < 20; pair++) assert.deepEqual(selector.order([viaGa1, viaGa2], `sc-src>sc-${pair}`)[0], viaGa1);
    // One fast probe does not bring the slow gateway back: the RTT is smoothed.
    selector.observeRtt('a/ga2', 1.0);
    for (let pair = 0; pair < 20; pair++) assert.deepEqual(selector.order([viaGa1, viaGa2], `sc-src>sc-${pair}`)[0], viaGa1);
  });

  it('puts paths that cross a draining gateway anywhere on them last, for the drain hold only', () => {
    let nowMs = 1_000_000;
    const selector = new PathSelector({ drainHoldMs: 30_000, now: () => nowMs });
    const viaGb = ['a/ga1', 'b/gb', 'c/gc'];
    const viaGb2 = ['a/ga1', 'b/gb2', 'c/gc'];
    // A middle gateway drains: the longer path around it goes first, the shorter one still last in the list.
    selector.draining('b/gb');
    for (let pair = 0; pair < 20; pair++) assert.deepEqual(selector.order([viaGb, viaGb2], `sc-src>sc-${pair}`), [viaGb2, viaGb]);
    nowMs += 29_000;
    assert.deepEqual(selector.order([viaGb, viaGb2], 'sc-x>sc-y'), [viaGb2, viaGb], 'still held just before the hold ends');
    nowMs += 2_000;
    const spread = new Set(Array.from({ length: 40 }, (_, pair) => selector.order([viaGb, viaGb2], `sc-src>sc-${pair}`)[0]?.[1]));
    assert.deepEqual([...spread].sort(), ['b/gb', 'b/gb2'], 'after the hold, both are in use again');
    // Every path crosses a draining gateway: all are still offered, none dropped.
    selector.draining('c/gc');
    assert.equal(selector.order([viaGb, viaGb2, viaGa2], 'sc-x>sc-y').length, 3);
  });
});
