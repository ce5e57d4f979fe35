// A command's last line must reach a reader that is slow: it once exited with output still
// queued for a full pipe, and the error code at the end of its stderr was lost.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { repoRoot, trellisBin } from '../support/processes.js';

/** Long enough for a command that does not wait for its pipes to have exited meanwhile. */
const READER_STALL_MS = 1500;

describe('exit with output still on its way', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-exit-output-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes the last line of stderr before exiting, even after more than a pipe holds', async () => {
    const file = join(dir, 'broken.yaml');
    await writeFile(file, 'service: [web\n');
    // NODE_DEBUG=module writes about 100 KB to stderr first: more than the 64 KiB a pipe holds.
    const child = spawn(process.execPath, [trellisBin, 'sidecar', '--config', file], { cwd: repoRoot, env: { ...process.env, NODE_DEBUG: 'module' } });
    const closed = once(child, 'close') as Promise<[number | null]>;
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.pause();
    // The reader stalls: the pipe fills, and what is left waits in the child.
    await Promise.race([once(child, 'exit'), delay(READER_STALL_MS)]);
    child.stderr.on('data', (chunk: string) => (stderr += chunk));
    child.stderr.resume();
    child.stdout.resume();
    const [code] = await closed;
    assert.equal(code, 2);
    assert.ok(stderr.trimEnd().endsWith('[TRELLIS_ERR_CONFIG_FILE]'), `stderr ends: ${stderr.slice(-300)}`);
    assert.ok(stderr.length > 64 * 1024, `${stderr.length} bytes on stderr: the test needs more than a pipe holds`);
  });
});
