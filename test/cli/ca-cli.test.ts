// `trellis ca`: usage mistakes exit 2 with TRELLIS_ERR_USAGE; the help names both subcommands.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runTrellis } from '../support/processes.js';

describe('trellis ca', () => {
  it('refuses a missing or unknown subcommand and a flag of the other one', async () => {
    for (const args of [['ca'], ['ca', 'rotat'], ['ca', 'rotate', '--json']]) {
      const { code, stderr } = await runTrellis(args);
      assert.equal(code, 2, args.join(' '));
      assert.ok(stderr.includes('[TRELLIS_ERR_USAGE]'), stderr);
    }
  });

  it('prints its help', async () => {
    const { code, stdout } = await runTrellis(['help', 'ca']);
    assert.equal(code, 0);
    assert.ok(stdout.startsWith('Usage: trellis ca rotate'), stdout);
    assert.ok(stdout.includes('trellis ca status [--json]'), stdout);
  });
});
