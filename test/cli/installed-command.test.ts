// After the README's install, `trellis` is a real command that works from any directory
// (not `npx trellis`, which outside the repository asks the public registry for a package).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { InstalledTrellis } from '../support/installed-trellis.js';
import { installTrellis } from '../support/installed-trellis.js';
import { repoRoot } from '../support/processes.js';

const execFileAsync = promisify(execFile);

describe('the installed trellis command', () => {
  let installed: InstalledTrellis;
  let elsewhere: string;
  before(async () => {
    installed = await installTrellis();
    elsewhere = mkdtempSync(join(tmpdir(), 'trellis-elsewhere-'));
  });
  after(() => {
    installed?.remove();
    if (elsewhere !== undefined) rmSync(elsewhere, { recursive: true, force: true });
  });

  /** Runs a shell command line in a directory outside the repository, with the installed `trellis` on PATH. */
  const sh = (line: string) => execFileAsync('sh', ['-c', line], { cwd: elsewhere, env: installed.env(), timeout: 60_000 });

  it('is installed by the command the README gives', () => {
    // installTrellis runs it with --prefix added; the two must not drift apart.
    assert.ok(readFileSync(join(repoRoot, 'README.md'), 'utf8').includes('npm ci && npm install -g --ignore-scripts . && npm run demo'));
  });

  it('is found on PATH, in the install prefix', async () => {
    const { stdout } = await sh('command -v trellis');
    assert.equal(stdout.trim(), join(installed.binDir, 'trellis'));
  });

  it('prints its version and help from another directory', async () => {
    const { version } = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal((await sh('trellis --version')).stdout, `trellis ${version}\n`);
    assert.ok((await sh('trellis help sidecar')).stdout.startsWith('Usage: trellis sidecar'));
  });

  it('starts a control plane whose data directory is relative to where it was run', async () => {
    // Spawned by name: the PATH of the environment finds the installed command.
    const child = spawn('trellis', ['control-plane', '--data-dir', './cp-data', '--listen', '127.0.0.1:0'], { cwd: elsewhere, env: installed.env({ TRELLIS_LOG_LEVEL: 'warn' }) });
    const exited = once(child, 'exit');
    let out = '';
    try {
      await new Promise<void>((resolve, reject) => {
        child.stdout.setEncoding('utf8').on('data', (text: string) => {
          out += text;
          if (out.includes('admin token written to')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`trellis control-plane exited (${code}) before it was ready`)));
      });
    } finally {
      child.kill('SIGTERM');
    }
    assert.deepEqual(await exited, [0, null]);
    assert.ok(out.includes('control plane listening on https://127.0.0.1:'), out);
    assert.ok(existsSync(join(elsewhere, 'cp-data', 'admin.token')));
  });
});
