// The short chaos run CI does: a kill -9 of the server sidecar and of the control plane, a
// partition, a full control-plane disk and an app that resets, against a live mesh in network namespaces, with
// every stream judged byte-exact on both ends (`npm run chaos` runs them all, longer).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChaosMesh } from './mesh.js';
import { runScenario } from './runner.js';
import { SCENARIOS } from './scenarios.js';

const CI_SCENARIOS = ['kill-server-a', 'kill-cp', 'partition', 'disk-full', 'app-resets'];

describe('chaos (short)', { timeout: 240_000 }, () => {
  let mesh: ChaosMesh | undefined;

  before(async () => {
    mesh = await ChaosMesh.start({ gateways: false });
  });

  after(async () => {
    await mesh?.stop();
  });

  for (const name of CI_SCENARIOS) {
    it(`${name}: no byte lost, every failed stream reset on both ends, the mesh serves again`, { timeout: 90_000 }, async (t) => {
      const scenario = SCENARIOS.find((entry) => entry.name === name);
      assert.ok(scenario !== undefined && mesh !== undefined);
      const result = await runScenario(mesh, scenario, true);
      t.diagnostic(`${name}: ${JSON.stringify(result.tally.byVerdict)}; recovery ${JSON.stringify(result.recoveryMs)} ms; ${result.notes.join('; ')}`);
      assert.deepEqual(result.problems, []);
      assert.equal(result.tally.bytesLost, 0);
      assert.equal(result.tally.untold, 0);
      assert.ok((result.tally.byVerdict.whole ?? 0) > 0, 'streams arrived whole');
      // Faults were injected, or (for a misbehaving app, which is the fault) the app did misbehave.
      assert.ok(result.faults.length >= 1 || (result.tally.byVerdict.expected ?? 0) > 0, 'no fault was injected');
    });
  }
});
