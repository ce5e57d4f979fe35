/**
 * docs/cli-reference.md, made from the commands' own `--help`: every command the top-level help
 * lists, in its order. `npm run docs` writes it; a test fails when the page and `--help` differ.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const trellisBin = fileURLToPath(new URL('../../../bin/trellis.js', import.meta.url));

/** What `trellis ARGS` prints on stdout. */
function trellis(args: string[]): string {
  return execFileSync(process.execPath, [trellisBin, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
}

/** The command names of the top-level help's "Commands:" section. */
export function listedCommands(topLevelHelp: string): string[] {
  const section = topLevelHelp.split('\nCommands:\n')[1]?.split('\n\n')[0] ?? '';
  const names = section.split('\n').map((line) => /^ {2}([a-z-]+)/.exec(line)?.[1]).filter((name): name is string => name !== undefined);
  return [...new Set(names)];
}

export function renderCliReference(): string {
  const top = trellis(['--help']);
  const parts = [
    '# CLI reference',
    '',
    '<!-- Generated from `trellis --help` and `trellis help COMMAND` by `npm run docs`; do not edit by hand. -->',
    '',
    'Exit codes: 0 when the command did what it was asked, 2 for a usage mistake (a wrong or',
    'misspelled flag, a bad config file), 1 for a runtime failure (an unreachable control plane, a',
    'bad token, a port in use; for `trellis status`, something wrong in the mesh). Errors are one',
    'line on stderr ending in their code, like `[TRELLIS_ERR_USAGE]`.',
    '',
    '## trellis',
    '',
    '```text',
    top.trimEnd(),
    '```',
  ];
  for (const command of listedCommands(top)) {
    parts.push('', `## trellis ${command}`, '', '```text', trellis(['help', command]).trimEnd(), '```');
  }
  return `${parts.join('\n')}\n`;
}
