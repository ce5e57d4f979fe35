// Ctrl-C stops the demo cleanly: the terminal sends SIGINT to the whole process group (the
// demo and every child it started), and the demo must wait for its children to exit before
// it removes their data directory (it used to fail with ENOTEMPTY and a stack trace).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../support/processes.js';

/** Rounds of start and Ctrl-C: the race lost about one run in six. */
const ROUNDS = 3;
const READY_TIMEOUT_MS = 90_000;
const EXIT_TIMEOUT_MS = 60_000;

async function startAndInterrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; leftover: string[] }> {
  // The demo makes its data directory under TMPDIR: a directory of the test's own, checked empty after.
  const tmp = mkdtempSync(join(tmpdir(), 'trellis-demo-test-'));
  // detached: a process group of its own, as a shell gives a job, so that the SIGINT reaches every child as from a terminal.
  const child = spawn(process.execPath, [join(repoRoot, 'dist/demo/demo.js')], { cwd: repoRoot, detached: true, env: { ...process.env, TMPDIR: tmp } });
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>;
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the demo did not serve traffic within ${READY_TIMEOUT_MS} ms:\n${stdout}\n${stderr}`)), READY_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (text: string) => {
        stdout += text;
        // Traffic through the mesh has reached an api instance: everything is up and busy.
        if (/requests per api endpoint {2}api-\d: \d+/.test(stdout)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the demo exited (${code}) before serving traffic:\n${stderr}`));
      });
    });
    process.kill(-(child.pid as number), 'SIGINT');
    const timer = setTimeout(() => process.kill(-(child.pid as number), 'SIGKILL'), EXIT_TIMEOUT_MS);
    const [code, signal] = await exited;
    clearTimeout(timer);
    return { code, signal, stdout, stderr, leftover: readdirSync(tmp) };
  } finally {
    try {
      process.kill(-(child.pid as number), 'SIGKILL');
    } catch {
      // The whole group is gone already.
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

describe('the demo on Ctrl-C', () => {
  for (let round = 1; round <= ROUNDS; round++) {
    it(`exits 0 with no error and leaves nothing behind (round ${round})`, async () => {
      const result = await startAndInterrupt();
      assert.deepEqual([result.code, result.signal], [0, null], result.stderr);
      assert.ok(!result.stderr.includes('ENOTEMPTY'), result.stderr);
      assert.ok(!/\n\s+at /.test(result.stderr), `a stack trace:\n${result.stderr}`);
      assert.deepEqual(result.leftover, []);
    });
  }
});
