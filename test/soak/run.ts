// `npm run soak -- --minutes N [--no-gateways] [--no-report]`: a soak run (soak.ts), its plot in
// docs/soak.png and its figures in docs/reliability.md. Exits 1 if anything trended upward or a
// stream broke the byte-exact promise.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeSection } from '../chaos/report-file.js';
import { renderPng, soakSvg } from './plot.js';
import { soakMarkdown } from './report.js';
import { runSoak } from './soak.js';

const PLOT_FILE = fileURLToPath(new URL('../../../docs/soak.png', import.meta.url));

const USAGE = `Usage: npm run soak -- --minutes N [--cert-ttl DURATION] [--no-gateways] [--no-report]
  --minutes N     how long the traffic runs (at least 1)
  --cert-ttl D    the leaf certificates' TTL, renewed at half-life (default 1m)
  --no-gateways   zone a only (no gateways, no cross-zone traffic)
  --no-report     do not rewrite docs/reliability.md and docs/soak.png`;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { minutes: { type: 'string' }, 'cert-ttl': { type: 'string' }, 'no-gateways': { type: 'boolean' }, 'no-report': { type: 'boolean' }, help: { type: 'boolean' } } });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const minutes = Number(values.minutes ?? 'x');
  if (!Number.isFinite(minutes) || minutes < 1) throw new Error(`soak: --minutes must be a number of at least 1, got ${JSON.stringify(values.minutes ?? null)}\n${USAGE}`);
  const startedAt = new Date();
  const certTtl = values['cert-ttl'];
  if (certTtl !== undefined && !/^\d+(ms|s|m|h)$/.test(certTtl)) throw new Error(`soak: --cert-ttl must be a duration like 90s or 1m, got ${JSON.stringify(certTtl)}\n${USAGE}`);
  const result = await runSoak({ minutes, certTtl, gateways: values['no-gateways'] !== true, log: (line) => process.stdout.write(`${line}\n`) });
  const args = process.argv.slice(2).join(' ');
  const command = `npm run soak -- ${args}`;
  if (values['no-report'] !== true) {
    writeFileSync(PLOT_FILE, renderPng(soakSvg(result.samples, `Trellis soak, ${minutes} min (${startedAt.toISOString().slice(0, 16)}Z)`)));
    writeSection('soak', soakMarkdown(result, { command, startedAt, plot: 'soak.png' }));
    process.stdout.write('soak: wrote docs/reliability.md and docs/soak.png\n');
  }
  for (const row of result.trends) {
    process.stdout.write(`soak: ${row.role} ${row.series} ${row.trend.first.toFixed(1)} → ${row.trend.last.toFixed(1)}, slope ${row.trend.slopePerMinute.toFixed(3)}/min ± ${row.trend.standardError.toFixed(3)}${row.up ? ' UP' : ''}\n`);
  }
  for (const problem of result.problems) process.stdout.write(`soak: problem: ${problem}\n`);
  process.stdout.write(`soak: ${result.problems.length === 0 ? 'pass' : 'FAIL'}: ${result.streams.streams} streams, ${result.pushes.ok} pushes, ${result.restarts} restarts, renewals ${JSON.stringify(result.renewals)}\n`);
  process.exitCode = result.problems.length === 0 ? 0 : 1;
}

// Ctrl-C or a kill: exit through process.exit so that the 'exit' hooks remove the namespaces and the tmpfs.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(2);
});
