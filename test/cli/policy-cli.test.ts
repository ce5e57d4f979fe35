// `trellis policy` against a real control plane: remove takes a rule away, and a rule for a
// service nobody registered is kept with a note on stderr.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { removeDirs, startControlPlane } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

describe('trellis policy', () => {
  let cp: ControlPlaneProcess;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    cp = await startControlPlane();
    env = { TRELLIS_CONTROL_PLANE: cp.url };
  });
  after(async () => {
    await cp?.proc.stop();
    await removeDirs(cp?.dataDir ?? '');
  });

  const policy = (...args: string[]) => runTrellis(['policy', ...args, '--admin-token-file', cp.adminTokenFile], env);

  it('keeps a rule for an unregistered service and says so; remove takes it away', async () => {
    const denied = await policy('deny', '--from', 'web', '--to', 'dbb');
    assert.equal(denied.code, 0, denied.stderr);
    assert.ok(denied.stderr.includes('no sidecar of service "dbb" is registered'), denied.stderr);
    const shown = JSON.parse((await policy('show')).stdout) as { rules: { from: string; to: string; action: string }[] };
    assert.deepEqual(shown.rules, [{ from: 'web', to: 'dbb', action: 'deny' }]);

    const removed = await policy('remove', '--from', 'web', '--to', 'dbb');
    assert.equal(removed.code, 0, removed.stderr);
    const after = JSON.parse((await policy('show')).stdout) as { rules: unknown[] };
    assert.deepEqual(after.rules, []);
  });

  it('fails with TRELLIS_ERR_NOT_FOUND when the rule to remove does not exist', async () => {
    const { code, stderr } = await policy('remove', '--from', 'web', '--to', 'nothing');
    assert.equal(code, 1);
    assert.ok(stderr.includes('[TRELLIS_ERR_NOT_FOUND]'), stderr);
  });
});
