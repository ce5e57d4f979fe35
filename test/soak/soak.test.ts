// The two-minute soak CI runs: steady traffic with churn, config pushes, certificate renewals
// and a sidecar restart; nothing may trend upward and no stream may break the byte-exact promise
// (`npm run soak -- --minutes N` runs it as long as asked).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runSoak } from './soak.js';

describe('soak (two minutes)', () => {
  it('keeps memory, fds, event-loop delay and streams flat under churn, pushes, renewals and restarts', { timeout: 300_000 }, async (t) => {
    // Two minutes is mostly warm-up: the floors are wide, a long run (npm run soak) has the tight ones.
    const floors = { rssMiB: 8, heapMiB: 8, fds: 2, loopDelayP99Ms: 10, streams: 2 };
    const result = await runSoak({ minutes: 2, gateways: false, sampleEveryMs: 3_000, restartEveryMs: 50_000, pushEveryMs: 8_000, floors });
    for (const row of result.trends) t.diagnostic(`${row.role} ${row.series}: ${row.trend.first.toFixed(2)} → ${row.trend.last.toFixed(2)}, slope ${row.trend.slopePerMinute.toFixed(3)}/min ± ${row.trend.standardError.toFixed(3)}`);
    t.diagnostic(`streams ${JSON.stringify(result.streams.byVerdict)}; pushes ${JSON.stringify(result.pushes)}; restarts ${result.restarts}; renewals ${JSON.stringify(result.renewals)}; cpu ${JSON.stringify(result.cpuSeconds)}`);
    assert.deepEqual(result.problems, []);
    assert.equal(result.streams.bytesLost, 0);
    assert.ok(result.restarts >= 1, 'the server sidecar was restarted');
    assert.ok(result.pushes.ok >= 5, 'config was pushed');
    assert.ok((result.renewals.client ?? 0) >= 1, 'the client sidecar renewed its certificate');
    // Every role was sampled all along, and each fit had points to go through.
    for (const role of new Set(result.samples.map((sample) => sample.role))) {
      const count = result.samples.filter((sample) => sample.role === role).length;
      assert.ok(count >= 20, `${role}: ${count} samples`);
    }
    for (const row of result.trends) assert.ok(row.trend.samples >= 5, `${row.role} ${row.series}: ${row.trend.samples} points fitted`);
  });
});
