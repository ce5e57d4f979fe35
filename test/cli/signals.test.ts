// A second Ctrl-C (or SIGTERM) while a process is already stopping means "stop now": the
// process still exits with status 0, having said so in its log, rather than dying of the signal.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { removeDirs } from '../support/mesh.js';
import { spawnTrellis } from '../support/processes.js';

describe('a second signal while stopping', () => {
  it('the control plane exits 0 when signalled again while it closes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-signals-'));
    try {
      const proc = spawnTrellis(['control-plane', '--data-dir', dir, '--listen', '127.0.0.1:0'], { TRELLIS_LOG_LEVEL: 'info' });
      await proc.waitForOutput(/admin token written to/);
      proc.child.kill('SIGINT');
      // The second signal goes as soon as the first one is seen in the log.
      while (!proc.stderr().includes('"shutting down"')) await once(proc.child.stderr, 'data');
      proc.child.kill('SIGINT');
      assert.equal(await proc.exited(), 0, proc.stderr());
    } finally {
      await removeDirs(dir);
    }
  });
});
