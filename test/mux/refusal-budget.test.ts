// PROTOCOL.md "Stream life": a receiver pauses reading a link whose peer has streams refused at
// open faster than its refusal budget, and carries on with nothing lost (the OPEN-flood defence).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { ErrorCode } from '../../proto/index.js';
import { MAX_PAUSE_MS, RefusalBudget } from '../../sidecar/mux/refusal-budget.js';
import type { MuxStream } from '../../sidecar/mux/index.js';
import { echo, next, receiveAll, sendAll, sessionPair, sha256, tcpPair } from './helpers.js';

describe('refusal budget', () => {
  it('allows a burst, then asks for a pause that pays the debt back, at most MAX_PAUSE_MS', () => {
    let nowMs = 0;
    const budget = new RefusalBudget({ burst: 3, perSecond: 1000 }, () => nowMs);
    for (let i = 0; i < 3; i += 1) budget.spend();
    assert.equal(budget.pauseMs(), 0, 'the burst is free');
    budget.spend();
    budget.spend();
    assert.equal(budget.pauseMs(), 2, 'two refusals in debt at 1,000/s');
    nowMs += 2;
    assert.equal(budget.pauseMs(), 0, 'paid back');
    for (let i = 0; i < 50_000; i += 1) budget.spend();
    assert.equal(budget.pauseMs(), MAX_PAUSE_MS);
    nowMs += 1_000_000;
    assert.equal(budget.pauseMs(), 0);
    for (let i = 0; i < 3; i += 1) budget.spend();
    assert.equal(budget.pauseMs(), 0, 'a long quiet spell refills the burst, not more');
    budget.spend();
    assert.equal(budget.pauseMs(), 1);
  });

  it('pauses a link whose peer floods refused OPENs, while its open stream stays byte-exact', { timeout: 60_000 }, async () => {
    const burst = 100;
    const perSecond = 2000;
    const floodStreams = 2100;
    const batch = 100;
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, {
      refusals: { burst, perSecond },
      onStream: (stream: MuxStream, service: string) => (service === 'bulk' ? echo(stream) : stream.reset(ErrorCode.RESOURCE_EXHAUSTED, 'over quota')),
    });
    const pauses: number[] = [];
    acceptor.on('paused', (pauseMs: number) => pauses.push(pauseMs));
    await dialer.whenReady();
    const data = randomBytes(4 * 1024 * 1024);
    const bulk = dialer.openStream('bulk');
    const echoed = receiveAll(bulk);
    const sent = sendAll(bulk, data);
    const started = performance.now();
    // In batches, each after the last one's RESETs, as a flooder that reads them must: the OPENs
    // of one chunk are all answered, the pause holds back the chunks after it.
    const codes: [number][] = [];
    for (let opened = 0; opened < floodStreams; opened += batch) {
      codes.push(...(await Promise.all(Array.from({ length: batch }, () => next<[number]>(dialer.openStream('flood'), 'reset')))));
    }
    const floodMs = performance.now() - started;
    await sent;
    const received = await echoed;
    assert.equal(codes.length, floodStreams);
    assert.ok(codes.every(([code]) => code === ErrorCode.RESOURCE_EXHAUSTED));
    assert.ok(pauses.length > 0, 'the acceptor paused reading');
    // Beyond the burst and the last batch (answered before its pause), 1,900 refusals at 2,000/s.
    assert.ok(floodMs >= ((floodStreams - burst - batch) / perSecond) * 1000 * 0.9, `the flood was slowed (${floodMs.toFixed(0)} ms)`);
    assert.deepEqual(received, { bytes: data.length, sha256: sha256(data) });
    assert.equal(acceptor.stats.activeStreams, 0);
    dialer.close();
  });
});
