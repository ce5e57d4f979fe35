// Usage mistakes exit 2 with the code TRELLIS_ERR_USAGE and a hint that works; runtime failures exit 1.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { repoRoot, runTrellis } from '../support/processes.js';

const usageCode = '[TRELLIS_ERR_USAGE]';

describe('trellis usage and exit codes', () => {
  it('prints the version from package.json', async () => {
    const { version } = JSON.parse(readFileSync(`${repoRoot}package.json`, 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const { code, stdout } = await runTrellis([flag]);
      assert.equal(code, 0);
      assert.equal(stdout, `trellis ${version}\n`);
    }
  });

  it('exits 2 with the usage on stderr when no command is given', async () => {
    const { code, stdout, stderr } = await runTrellis([]);
    assert.equal(code, 2);
    assert.equal(stdout, '');
    assert.ok(stderr.startsWith('Usage: trellis'));
  });

  it('suggests the command meant, and points an unknown command at the top-level help', async () => {
    const { code, stderr } = await runTrellis(['sidecr']);
    assert.equal(code, 2);
    assert.ok(stderr.includes('(did you mean "sidecar"?)'), stderr);
    assert.ok(stderr.includes("(see 'trellis --help')"), stderr);
    assert.ok(stderr.includes(usageCode));
    const far = await runTrellis(['frobnicate']);
    assert.equal(far.code, 2);
    assert.ok(!far.stderr.includes('did you mean'), far.stderr);
  });

  it('suggests the flag meant for a misspelled one, and points at the command\'s help', async () => {
    const { code, stderr } = await runTrellis(['sidecar', '--lisen', '127.0.0.1:0']);
    assert.equal(code, 2);
    assert.ok(stderr.includes('unknown flag --lisen (did you mean --listen?)'), stderr);
    assert.ok(stderr.includes("(see 'trellis help sidecar')"), stderr);
    const hint = await runTrellis(['help', 'sidecar']);
    assert.equal(hint.code, 0, 'the hint itself works');
  });

  it('exits 1 for a runtime failure (an admin token the CLI cannot use)', async () => {
    const { code, stderr } = await runTrellis(['policy', 'show', '--control-plane', 'https://127.0.0.1:1'], { TRELLIS_ADMIN_TOKEN: 'trellis-admin-v1.e30' });
    // The token is read and refused at run time, before any connection.
    assert.equal(code, 1, stderr);
    assert.ok(stderr.includes('[TRELLIS_ERR_BAD_TOKEN]'), stderr);
  });

  it('takes the control plane from TRELLIS_CONTROL_PLANE and refuses a bad one by name', async () => {
    const { code, stderr } = await runTrellis(['policy', 'show'], { TRELLIS_CONTROL_PLANE: 'http://127.0.0.1:7400' });
    assert.equal(code, 2);
    assert.ok(stderr.includes('TRELLIS_CONTROL_PLANE must be an https:// URL'), stderr);
    const missing = await runTrellis(['policy', 'show'], { TRELLIS_CONTROL_PLANE: '' });
    assert.equal(missing.code, 2);
    assert.ok(missing.stderr.includes(usageCode));
  });
});
