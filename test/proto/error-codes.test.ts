// One registry of error codes: every code the source names, the tests assert and the docs
// explain is in it, so a misspelled code cannot pass for a real one.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isTrellisErrorCode, TRELLIS_ERROR_CODES } from '../../proto/error-codes.js';
import { repoRoot } from '../support/processes.js';

const CODE = /TRELLIS_ERR_[A-Z0-9_]*[A-Z0-9]/g;

function filesUnder(dir: string, extension: string): string[] {
  return readdirSync(join(repoRoot, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(extension))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Each code named in `files` that the registry lacks, with the first file naming it. */
function unregistered(files: string[]): Map<string, string> {
  const missing = new Map<string, string>();
  for (const file of files) {
    for (const [code] of readFileSync(file, 'utf8').matchAll(CODE)) {
      if (!isTrellisErrorCode(code) && !missing.has(code)) missing.set(code, file.slice(repoRoot.length));
    }
  }
  return missing;
}

describe('error code registry', () => {
  it('lists each code once', () => {
    assert.equal(new Set(TRELLIS_ERROR_CODES).size, TRELLIS_ERROR_CODES.length);
  });

  it('holds every code the source names', () => {
    const files = ['proto', 'sidecar', 'control-plane', 'cli', 'bench', 'demo'].flatMap((dir) => filesUnder(dir, '.ts'));
    assert.ok(files.length > 100, `${files.length} source files`);
    assert.deepEqual([...unregistered(files)], []);
  });

  it('holds every code the tests assert', () => {
    const files = filesUnder('test', '.ts').filter((file) => !file.endsWith('error-codes.test.ts'));
    assert.deepEqual([...unregistered(files)], []);
  });

  it('holds every code the docs explain', () => {
    const files = [...filesUnder('docs', '.md'), join(repoRoot, 'README.md'), join(repoRoot, 'proto', 'PROTOCOL.md')];
    assert.deepEqual([...unregistered(files)], []);
  });

  it('tells a registered code from an unknown one', () => {
    assert.equal(isTrellisErrorCode('TRELLIS_ERR_STREAM_ID'), true);
    assert.equal(isTrellisErrorCode('TRELLIS_ERR_STREAM_IDS'), false);
  });
});
