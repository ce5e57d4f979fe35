// Every command answers --help with its usage on stdout and exit 0, as the top-level help says,
// and every command's help ends with examples.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runTrellis } from '../support/processes.js';

/** Every command the top-level help lists. */
export const COMMANDS = ['control-plane', 'sidecar', 'gateway', 'run', 'token', 'policy', 'status', 'services', 'endpoints'];

// The commands' answers do not depend on one another: they run at once.
describe('trellis --help', { concurrency: true }, () => {
  for (const args of [['--help'], ['token', 'create', '--help'], ['help', 'sidecar'], ['help', 'gateway'], ...COMMANDS.map((command) => [command, '--help'])]) {
    it(`trellis ${args.join(' ')}`, async () => {
      const { code, stdout, stderr } = await runTrellis(args);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^Usage: trellis/);
    });
  }

  it('shows examples on every command\'s help', async () => {
    const helps = await Promise.all(COMMANDS.map((command) => runTrellis(['help', command])));
    for (const [index, command] of COMMANDS.entries()) {
      const { stdout } = helps[index] ?? { stdout: '' };
      const examples = stdout.slice(stdout.lastIndexOf('\nExample'));
      assert.ok(/^\nExamples?:\n {2}trellis /.test(examples), `trellis help ${command} has no example`);
    }
  });

  it('lists every command in the top-level help', async () => {
    const { stdout } = await runTrellis(['--help']);
    for (const command of COMMANDS) assert.ok(stdout.includes(`\n  ${command} `), `${command} is missing from trellis --help`);
  });
});
