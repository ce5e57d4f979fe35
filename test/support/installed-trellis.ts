import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './processes.js';

const execFileAsync = promisify(execFile);

/** The `trellis` command installed as the README says, into a prefix of its own. */
export interface InstalledTrellis {
  /** The prefix's `bin` directory, holding `trellis`. */
  readonly binDir: string;
  /** An environment whose PATH finds the installed `trellis` first. */
  env(extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  remove(): void;
}

/**
 * Runs the README's install (`npm install -g .`) with `--prefix` pointing at a temporary
 * directory, so that the test leaves the machine's global packages alone.
 */
export async function installTrellis(): Promise<InstalledTrellis> {
  const prefix = mkdtempSync(join(tmpdir(), 'trellis-prefix-'));
  try {
    await execFileAsync('npm', ['install', '-g', '--prefix', prefix, '--ignore-scripts', '--no-audit', '--no-fund', repoRoot], { cwd: prefix, timeout: 120_000 });
  } catch (error) {
    rmSync(prefix, { recursive: true, force: true });
    throw error;
  }
  const binDir = join(prefix, 'bin');
  return {
    binDir,
    env: (extra = {}) => ({ ...process.env, PATH: `${binDir}${delimiter}${process.env['PATH'] ?? ''}`, ...extra }),
    remove: () => rmSync(prefix, { recursive: true, force: true }),
  };
}
