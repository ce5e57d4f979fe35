// docs/quickstart.md and docs/examples.md, run as written: each page's shell blocks in order, in
// an empty directory, with the `trellis` command installed as the README says, on a host of its
// own (a network namespace, so the page's fixed ports are its own). Every `text` block (what the
// page says a command prints) must appear in the output, in order.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { InstalledTrellis } from '../support/installed-trellis.js';
import { installTrellis } from '../support/installed-trellis.js';
import type { Topology } from '../support/netns.js';
import { createTopology } from '../support/netns.js';
import { repoRoot } from '../support/processes.js';

const NOT_RUN_MARKER = '<!-- not run by test/docs/quickstart.test.ts';
const PAGE_TIMEOUT_MS = 240_000;
/** Each page, with the least it must hold: shell blocks and lines of printed output. */
const PAGES = [
  { page: 'quickstart.md', network: '10.93.1.0/24', host: '10.93.1.2', minCommands: 8, minOutputs: 5 },
  { page: 'examples.md', network: '10.93.2.0/24', host: '10.93.2.2', minCommands: 8, minOutputs: 4 },
];

/** The page's fenced blocks, in order, with their language and whether the marker precedes them. */
export function fencedBlocks(markdown: string): { language: string; body: string; skipped: boolean }[] {
  const blocks: { language: string; body: string; skipped: boolean }[] = [];
  const pattern = /(<!--[^\n]*-->\n)?```(\w*)\n([\s\S]*?)```/g;
  for (const match of markdown.matchAll(pattern)) {
    blocks.push({ language: match[2] ?? '', body: match[3] ?? '', skipped: (match[1] ?? '').startsWith(NOT_RUN_MARKER) });
  }
  return blocks;
}

for (const { page, network, host, minCommands, minOutputs } of PAGES) {
  describe(`docs/${page}`, () => {
    let installed: InstalledTrellis;
    let topology: Topology;
    let workDir: string;
    before(async () => {
      installed = await installTrellis();
      topology = await createTopology({ networks: { lan: network }, hosts: { laptop: { lan: host } } });
      workDir = mkdtempSync(join(tmpdir(), 'trellis-docs-page-'));
    });
    after(async () => {
      // The page starts background jobs; a failed run may leave some in the namespace.
      const netns = topology?.host('laptop').netns;
      if (netns !== undefined) {
        const pids = execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' }).split('\n').filter((pid) => pid !== '');
        for (const pid of pids) {
          try {
            process.kill(Number(pid), 'SIGKILL');
          } catch {
            // Gone already.
          }
        }
      }
      await topology?.destroy();
      installed?.remove();
      if (workDir !== undefined) rmSync(workDir, { recursive: true, force: true });
    });

    it('runs as written and prints what it says', async () => {
      const blocks = fencedBlocks(readFileSync(join(repoRoot, 'docs', page), 'utf8'));
      const commands = blocks.filter((block) => block.language === 'sh' && !block.skipped).map((block) => block.body);
      const expected = blocks.filter((block) => block.language === 'text').flatMap((block) => block.body.split('\n').filter((line) => line !== ''));
      assert.ok(commands.length >= minCommands && expected.length >= minOutputs, `${page} lost its commands or outputs`);
      const script = join(workDir, 'page.sh');
      writeFileSync(script, `set -euo pipefail\ncd ${JSON.stringify(workDir)}\n${commands.join('\n')}`);
      // The environment a newcomer's shell has: no TRELLIS_* left over from the test runner.
      const env = Object.fromEntries(Object.entries(installed.env()).filter(([key]) => !key.startsWith('TRELLIS_')));
      const result = await topology.exec('laptop', 'bash', [script], { env, timeoutMs: PAGE_TIMEOUT_MS });
      assert.equal(result.exitCode, 0, `${page} failed:\n${result.stdout}\n${result.stderr}`);
      let from = 0;
      for (const line of expected) {
        const at = result.stdout.indexOf(`${line}\n`, from);
        assert.ok(at !== -1, `${page} says it prints "${line}", but it printed:\n${result.stdout}`);
        from = at + line.length;
      }
    });
  });
}
