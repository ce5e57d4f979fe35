// Builds the dashboard page into dist/control-plane/dashboard/: checks its TypeScript, bundles
// it with cytoscape into one script (the control plane serves it; no CDN), copies the HTML and CSS.
import { execFileSync } from 'node:child_process';
import { copyFile, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = `${root}control-plane/dashboard`;
const out = `${root}dist/control-plane/dashboard`;

try {
  execFileSync(process.execPath, [`${root}node_modules/typescript/bin/tsc`, '-p', `${source}/app/tsconfig.json`], { stdio: 'inherit' });
} catch {
  console.error('build-dashboard: the page does not type-check (above)');
  process.exit(1);
}
await mkdir(out, { recursive: true });
await build({
  entryPoints: [`${source}/app/main.ts`],
  outfile: `${out}/app.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome120', 'firefox115'],
  minify: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const file of ['index.html', 'style.css']) await copyFile(`${source}/static/${file}`, `${out}/${file}`);
