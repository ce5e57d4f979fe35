import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BalancerEndpoint, PickResult, StreamLease } from '../../sidecar/balancer/index.js';
import { HashRingBalancer } from '../../sidecar/balancer/index.js';

const endpoints: BalancerEndpoint[] = [1, 2, 3].map((n) => ({ sidecarId: `sc-${n}`, address: `127.0.0.1:${7000 + n}`, weight: 1 }));
const KEY = '10.1.2.3:40000';

/** A balancer on a fake clock, with the ejections it reported. */
function setup(init: { maxStreamsPerEndpoint?: number; loadFactor?: number } = {}) {
  const clock = { nowMs: 1_000_000 };
  const ejected: string[] = [];
  const balancer = new HashRingBalancer({
    ...init,
    ejection: { consecutiveFailures: 3, baseBackoffMs: 1000, maxBackoffMs: 8000 },
    observer: { endpointEjected: (service) => ejected.push(service), boundedLoadSkipped: () => undefined },
    now: () => clock.nowMs,
  });
  balancer.update('api', endpoints);
  const owner = balancer.candidates('api', KEY, 1)[0]!.sidecarId;
  return { clock, ejected, balancer, owner };
}

function lease(result: PickResult): StreamLease {
  assert.ok(result.ok, `no pick: ${result.ok ? '' : result.reason}`);
  return result.lease;
}

/** Where `KEY` goes now (the stream is released at once). */
function pickFor(balancer: HashRingBalancer): string {
  const picked = lease(balancer.pick('api', KEY));
  picked.release();
  return picked.endpoint.sidecarId;
}

/** One failed stream to the key's pick; returns the ejection it caused. */
function failOnce(balancer: HashRingBalancer) {
  const picked = lease(balancer.pick('api', KEY));
  const ejection = picked.failed();
  picked.release();
  return { endpoint: picked.endpoint.sidecarId, ejection };
}

describe('ejection of failing endpoints', () => {
  it('ejects after 3 consecutive failures, keeps it out for the back-off, then gives it a trial', () => {
    const { clock, ejected, balancer, owner } = setup();
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.deepEqual(failOnce(balancer), { endpoint: owner, ejection: { ejectedForMs: 1000, consecutiveFailures: 3 } });
    assert.deepEqual(ejected, ['api']);

    assert.notEqual(pickFor(balancer), owner, 'ejected: the key goes elsewhere');
    assert.equal(balancer.candidates('api', KEY, 1)[0]?.sidecarId, owner, 'the ring itself is unchanged');
    assert.equal(balancer.endpointStats('api').find((s) => s.sidecarId === owner)?.ejected, true);
    clock.nowMs += 999;
    assert.notEqual(pickFor(balancer), owner, 'still ejected 1 ms before the back-off ends');
    clock.nowMs += 1;
    assert.equal(pickFor(balancer), owner, 'back on trial once the back-off is over');
  });

  it('doubles the back-off when the trial fails, caps it, and resets it after a success', () => {
    const { clock, balancer, owner } = setup();
    for (let i = 0; i < 2; i++) failOnce(balancer);
    const backoffs: number[] = [];
    for (let round = 0; round < 6; round++) {
      const { endpoint, ejection } = failOnce(balancer);
      assert.equal(endpoint, owner);
      assert.ok(ejection !== undefined, 'one failed trial ejects again at once');
      backoffs.push(ejection.ejectedForMs);
      clock.nowMs += ejection.ejectedForMs;
    }
    assert.deepEqual(backoffs, [1000, 2000, 4000, 8000, 8000, 8000]);

    const trial = lease(balancer.pick('api', KEY));
    assert.equal(trial.endpoint.sidecarId, owner);
    trial.succeeded();
    trial.release();
    assert.equal(pickFor(balancer), owner);
    // Back to a clean record: three failures again, and the shortest back-off.
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.equal(failOnce(balancer).ejection?.ejectedForMs, 1000);
  });

  it('takes options given as undefined for their defaults', () => {
    const clock = { nowMs: 0 };
    const balancer = new HashRingBalancer({ ejection: { consecutiveFailures: 1, baseBackoffMs: 500, maxBackoffMs: undefined }, now: () => clock.nowMs });
    balancer.update('api', endpoints);
    assert.deepEqual(failOnce(balancer).ejection, { ejectedForMs: 500, consecutiveFailures: 1 });
  });

  it('counts only consecutive failures: a success in between ends the streak', () => {
    const { balancer, owner } = setup();
    failOnce(balancer);
    failOnce(balancer);
    const served = lease(balancer.pick('api', KEY));
    served.succeeded();
    served.release();
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.equal(failOnce(balancer).ejection, undefined);
    assert.equal(pickFor(balancer), owner);
  });

  it('does not cut an ejection short for a late success of a stream picked before it', () => {
    // A high load factor keeps the failing streams on the owner while the early one is open.
    const { clock, balancer, owner } = setup({ loadFactor: 100 });
    const early = lease(balancer.pick('api', KEY));
    for (let i = 0; i < 3; i++) failOnce(balancer);
    early.succeeded();
    early.release();
    assert.notEqual(pickFor(balancer), owner);
    clock.nowMs += 1000;
    assert.equal(pickFor(balancer), owner);
  });

  it('uses ejected endpoints as a last resort when every endpoint is ejected', () => {
    const { balancer } = setup();
    for (const endpoint of endpoints) {
      for (let i = 0; i < 3; i++) {
        const picked = lease(balancer.pick('api', endpoint.sidecarId, new Set(endpoints.filter((e) => e !== endpoint).map((e) => e.sidecarId))));
        picked.failed();
        picked.release();
      }
    }
    assert.ok(balancer.endpointStats('api').every((s) => s.ejected));
    assert.ok(balancer.pick('api', KEY).ok);
  });

  it('skips endpoints already tried for the connection, in ring order', () => {
    const { balancer } = setup();
    const order = balancer.candidates('api', KEY, 3).map((e) => e.sidecarId);
    const tried = new Set<string>();
    for (const expected of order) {
      const picked = lease(balancer.pick('api', KEY, tried));
      assert.equal(picked.endpoint.sidecarId, expected);
      picked.release();
      tried.add(expected);
    }
    assert.deepEqual(balancer.pick('api', KEY, tried), { ok: false, reason: 'all-tried' });
    assert.deepEqual(balancer.pick('db', KEY), { ok: false, reason: 'no-endpoints' });
  });
});

describe('stream limit per endpoint', () => {
  it('sends streams beyond the limit to the next endpoint, and refuses once all are full', () => {
    // A high load factor leaves the limit alone in play.
    const { balancer, owner } = setup({ maxStreamsPerEndpoint: 2, loadFactor: 100 });
    const open = Array.from({ length: 6 }, () => lease(balancer.pick('api', KEY)));
    const perEndpoint = new Map<string, number>();
    for (const l of open) perEndpoint.set(l.endpoint.sidecarId, (perEndpoint.get(l.endpoint.sidecarId) ?? 0) + 1);
    assert.deepEqual([...perEndpoint.values()], [2, 2, 2]);
    const [first] = open;
    assert.equal(first?.endpoint.sidecarId, owner);
    assert.deepEqual(balancer.pick('api', KEY), { ok: false, reason: 'all-full' });

    first.release();
    assert.equal(pickFor(balancer), owner, 'room again on the owner');
  });
});

describe('endpoint changes', () => {
  it('keeps load and failure records across updates, and forgets an endpoint that left once its streams end', () => {
    const { balancer, owner } = setup();
    failOnce(balancer);
    failOnce(balancer);
    const held = lease(balancer.pick('api', KEY));
    balancer.update('api', endpoints.slice()); // same endpoints, new ring
    assert.equal(balancer.endpointStats('api').find((s) => s.sidecarId === owner)?.failureStreak, 2);
    assert.equal(balancer.endpointStats('api').find((s) => s.sidecarId === owner)?.activeStreams, 1);

    balancer.update('api', endpoints.filter((e) => e.sidecarId !== owner));
    assert.equal(balancer.endpointStats('api').length, 2);
    assert.notEqual(pickFor(balancer), owner);
    held.release();
    balancer.update('api', endpoints);
    assert.deepEqual(balancer.endpointStats('api').find((s) => s.sidecarId === owner), { sidecarId: owner, activeStreams: 0, failureStreak: 0, ejected: false });

    balancer.update('api', []);
    assert.deepEqual(balancer.endpointStats('api'), []);
    assert.deepEqual(balancer.pick('api', KEY), { ok: false, reason: 'no-endpoints' });
  });
});
