#!/usr/bin/env node
// The `trellis` command: runs the compiled CLI (built by `npm install` through the `prepare` script).
import('../dist/cli/main.js').catch((error) => {
  process.stderr.write(`trellis: cannot start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.stderr.write('trellis: run `npm install` (or `npm run build`) in the repository first\n');
  process.exit(1);
});
