// The generated reference pages cannot drift: the CLI reference must be what --help prints now,
// the metrics reference what the metric definitions say. `npm run docs` rewrites both.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { listedCommands, renderCliReference } from '../../cli/reference/cli-reference.js';
import { renderMetricsReference } from '../../cli/reference/metrics-reference.js';
import { repoRoot, runTrellis } from '../support/processes.js';

const page = (name: string): string => readFileSync(join(repoRoot, 'docs', name), 'utf8');

describe('generated reference pages', () => {
  it('docs/cli-reference.md is what --help prints (run `npm run docs` after changing a help page)', () => {
    assert.equal(page('cli-reference.md'), renderCliReference());
  });

  it('docs/cli-reference.md covers every command of the top-level help', async () => {
    const commands = listedCommands((await runTrellis(['--help'])).stdout);
    for (const expected of ['control-plane', 'sidecar', 'gateway', 'run', 'token', 'policy', 'status', 'services', 'endpoints']) assert.ok(commands.includes(expected), expected);
    for (const command of commands) assert.ok(page('cli-reference.md').includes(`\n## trellis ${command}\n`), command);
  });

  it('docs/metrics.md lists the metrics the code defines (run `npm run docs` after changing one)', () => {
    const rendered = renderMetricsReference();
    assert.equal(page('metrics.md'), rendered);
    for (const name of ['trellis_sidecar_streams_active', 'trellis_cp_joins_total']) assert.ok(rendered.includes(`| \`${name}\` |`), name);
  });
});

describe('config files shown in the docs', () => {
  it('every yaml block of docs/operations.md is a valid config file of its command (sidecar unless its first line names one)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trellis-docs-yaml-'));
    try {
      const blocks = [...page('operations.md').matchAll(/```yaml\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
      assert.ok(blocks.length > 0, 'docs/operations.md shows no config file');
      for (const [i, block] of blocks.entries()) {
        const path = join(dir, `example-${i}.yaml`);
        writeFileSync(path, block);
        const command = /^# .*\(trellis ([a-z-]+)\)/.exec(block)?.[1] ?? 'sidecar';
        // --help after the file: the file is read and checked, then only the help is printed.
        const { code, stderr } = await runTrellis([command, '--config', path, '--help']);
        assert.equal(code, 0, `${block}\n${stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
