// `npm run docs`: writes the generated reference pages (CLI and metrics) into docs/.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderCliReference } from './cli-reference.js';
import { renderMetricsReference } from './metrics-reference.js';

const docs = (name: string): string => fileURLToPath(new URL(`../../../docs/${name}`, import.meta.url));
writeFileSync(docs('cli-reference.md'), renderCliReference());
writeFileSync(docs('metrics.md'), renderMetricsReference());
process.stdout.write('wrote docs/cli-reference.md and docs/metrics.md\n');
