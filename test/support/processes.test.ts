// The helper the CLI tests read a finished command's output through: it must return all of
// it. It resolved at 'exit', when what is still in the pipes may be unread.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { runToEnd } from './processes.js';

describe('runToEnd', () => {
  it('returns what is written to the pipes after the process itself has exited', async () => {
    // The shell exits at once; the subshell it leaves holds stdout and stderr and writes later.
    const result = await runToEnd('sh', ['-c', '(sleep 0.3; echo late-out; echo late-err >&2) & exit 3']);
    assert.deepEqual(result, { code: 3, stdout: 'late-out\n', stderr: 'late-err\n' });
  });

  it('returns the signal that ended the process', async () => {
    const result = await runToEnd('sh', ['-c', 'echo before; kill -TERM $$']);
    assert.deepEqual(result, { code: 'SIGTERM', stdout: 'before\n', stderr: '' });
  });
});
