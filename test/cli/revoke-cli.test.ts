// `trellis revoke` against a real control plane: what it prints, and each refusal by its code.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { RevocationsView } from '../../proto/control.js';
import { encodeAdminToken, parseAdminToken } from '../../proto/tokens.js';
import type { ControlPlaneProcess } from '../support/mesh.js';
import { removeDirs, startControlPlane } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

describe('trellis revoke', () => {
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

  const revoke = (...args: string[]) => runTrellis(['revoke', ...args, '--admin-token-file', cp.adminTokenFile], env);
  const list = async (): Promise<RevocationsView> => JSON.parse((await revoke('--list')).stdout) as RevocationsView;

  it('answers --help with its usage', async () => {
    const { code, stdout } = await runTrellis(['revoke', '--help']);
    assert.equal(code, 0);
    assert.ok(stdout.startsWith('Usage: trellis revoke'), stdout);
  });

  it('keeps a revocation of an id nobody registered, says so, and lists it', async () => {
    const revoked = await revoke('--sidecar', 'sc-000000000001');
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.ok(revoked.stderr.includes('no endpoint of sidecar sc-000000000001 is registered'), revoked.stderr);
    const again = await revoke('--sidecar', 'sc-000000000001');
    assert.equal(again.code, 0, again.stderr);
    const view = await list();
    assert.deepEqual(view.sidecars.map((entry) => entry.sidecarId), ['sc-000000000001'], 'revoking twice keeps one entry');
  });

  it('revokes a service, then allows its joins again while its old certificates stay revoked', async () => {
    assert.equal((await revoke('--service', 'billing')).code, 0);
    const [revoked] = (await list()).services;
    assert.equal(revoked?.service, 'billing');
    assert.equal(revoked.refuseJoins, true);
    assert.ok(revoked.notBeforeCutoff < revoked.revokedAt, 'the cut-off covers leaves backdated for clock skew');
    const allowed = await revoke('--service', 'billing', '--allow-joins');
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.deepEqual((await list()).services, [{ ...revoked, refuseJoins: false }]);
  });

  it('refuses bad input, each with its code', async () => {
    const cases: [string[], number, string][] = [
      [[], 2, 'TRELLIS_ERR_USAGE'],
      [['--sidecar', 'sc-1', '--service', 'api'], 2, 'TRELLIS_ERR_USAGE'],
      [['--sidecar', 'sc-1', '--allow-joins'], 2, 'TRELLIS_ERR_USAGE'],
      [['--sidecr', 'sc-1'], 2, 'TRELLIS_ERR_USAGE'],
      [['--sidecar', 'not an id!'], 1, 'TRELLIS_ERR_INVALID'],
      [['--service', 'Not_A_Service'], 1, 'TRELLIS_ERR_INVALID'],
      [['--service', 'never-revoked', '--allow-joins'], 1, 'TRELLIS_ERR_NOT_FOUND'],
    ];
    for (const [args, exitCode, errorCode] of cases) {
      const { code, stderr } = await revoke(...args);
      assert.equal(code, exitCode, `${args.join(' ')}: ${stderr}`);
      assert.ok(stderr.includes(`[${errorCode}]`), `${args.join(' ')}: ${stderr}`);
    }
  });

  it('refuses an admin token with the wrong secret, and revokes nothing', async () => {
    const token = parseAdminToken(readFileSync(cp.adminTokenFile, 'utf8'));
    const forged = encodeAdminToken({ ...token, secret: Buffer.alloc(32, 1).toString('base64url') });
    const { code, stderr } = await runTrellis(['revoke', '--service', 'api'], { ...env, TRELLIS_ADMIN_TOKEN: forged });
    assert.equal(code, 1);
    assert.ok(stderr.includes('[TRELLIS_ERR_UNAUTHORIZED]'), stderr);
    assert.ok(!(await list()).services.some((entry) => entry.service === 'api'));
  });
});
