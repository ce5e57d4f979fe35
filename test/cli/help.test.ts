// Every command answers --help with its usage on stdout and exit 0, as the top-level help says.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runTrellis } from '../support/processes.js';

describe('trellis --help', () => {
  for (const args of [['--help'], ['control-plane', '--help'], ['sidecar', '--help'], ['run', '--help'], ['token', '--help'], ['token', 'create', '--help'], ['policy', '--help'], ['gateway', '--help'], ['help', 'sidecar'], ['help', 'gateway']]) {
    it(`trellis ${args.join(' ')}`, async () => {
      const { code, stdout, stderr } = await runTrellis(args);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^Usage: trellis/);
    });
  }
});
