/**
 * The results as a JSON file and a markdown table: every Trellis figure beside each other
 * contender's same figure and as a ratio to it, with the issue's targets marked met or not.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BenchSizes } from './options.js';
import type { BenchResults, Cell, ContenderId, MetricRow, Target, TargetResult } from './results.js';
import { CONTENDER_IDS, CONTENDER_TITLES, isMeasured, isTrellisVariant } from './results.js';

/** Streams a sidecar must hold for the memory target to apply. */
const STREAMS_TARGET_COUNT = 10_000;
/** Simulated sidecars the connect-time and memory targets are stated for. */
const CONTROL_PLANE_TARGET_SIDECARS = 10_000;
const MAX_OBSERVATIONS_SHOWN = 40;

/** The goals Trellis is held to, for the sizes of this run. */
export function targetsFor(sizes: BenchSizes): Target[] {
  const targets: Target[] = [
    { metric: 'bulk.throughput', kind: 'relative', versus: 'stunnel', factor: 1.0, text: '≥ 1.0× stunnel' },
    { metric: 'hol.ratio', kind: 'absolute', bound: 0.9, text: '≥ 0.9 (within 10 % of alone)' },
    { metric: 'rr50.set.rps', kind: 'relative', versus: 'haproxy', factor: 1.5, text: '≥ 1.5× HAProxy' },
    { metric: 'rr50.get.rps', kind: 'relative', versus: 'haproxy', factor: 1.5, text: '≥ 1.5× HAProxy' },
    { metric: 'rr1.get.p50', kind: 'relative', versus: 'stunnel', factor: 1.0, text: '≤ stunnel' },
    { metric: 'rr1.get.p99', kind: 'relative', versus: 'stunnel', factor: 1.5, text: '≤ 1.5× stunnel' },
    { metric: 'churn.rps', kind: 'relative', versus: 'stunnel', factor: 10, text: '≥ 10× stunnel' },
    { metric: 'idle.rss.client', kind: 'absolute', bound: 50, text: '≤ 50 MB' },
    { metric: 'idle.rss.server', kind: 'absolute', bound: 50, text: '≤ 50 MB' },
    // Across zones: a tunnel through one gateway of each zone, and a WebSocket link, against the direct TLS link.
    { metric: 'bulk.throughput', kind: 'relative', subject: 'trellis-gw', versus: 'trellis', factor: 0.7, text: 'via 2 gateways ≥ 0.7× Trellis' },
    { metric: 'bulk.throughput', kind: 'relative', subject: 'trellis-wss', versus: 'trellis', factor: 0.8, text: 'over wss ≥ 0.8× Trellis (tls)' },
  ];
  if (sizes.streams >= STREAMS_TARGET_COUNT) {
    // The forwarding core's target (it tightened the first one, 200 MB).
    targets.push({ metric: 'streams.peak_rss.client', kind: 'absolute', bound: 150, text: '≤ 150 MB' });
    targets.push({ metric: 'streams.peak_rss.server', kind: 'absolute', bound: 150, text: '≤ 150 MB' });
  }
  // The same targets for one control plane on its file store and for two replicas on etcd.
  for (const prefix of ['cp', 'cp-etcd']) {
    if (sizes.controlPlaneSidecars.includes(CONTROL_PLANE_TARGET_SIDECARS)) {
      targets.push({ metric: `${prefix}.${CONTROL_PLANE_TARGET_SIDECARS}.connect_s`, kind: 'absolute', bound: 30, text: '≤ 30 s' });
      targets.push({ metric: `${prefix}.${CONTROL_PLANE_TARGET_SIDECARS}.rss_per_sidecar`, kind: 'absolute', bound: 100, text: '≤ 100 KB' });
    }
    for (const sidecars of sizes.controlPlaneSidecars) {
      targets.push({ metric: `${prefix}.${sidecars}.certs_per_s`, kind: 'absolute', bound: 500, text: '≥ 500 certs/s' });
      targets.push({ metric: `${prefix}.${sidecars}.policy_p99`, kind: 'absolute', bound: 1000, text: '≤ 1 s' });
      targets.push({ metric: `${prefix}.${sidecars}.endpoint_p99`, kind: 'absolute', bound: 1000, text: '≤ 1 s' });
    }
  }
  return targets;
}

/** `subject`'s figure divided by `versus`'s, when both are measured. */
export function ratioOf(row: MetricRow, subject: ContenderId, versus: ContenderId): number | undefined {
  const [mine, theirs] = [row.cells[subject], row.cells[versus]];
  return isMeasured(mine) && isMeasured(theirs) && theirs !== 0 ? mine / theirs : undefined;
}

/**
 * The ratio shown beside `id`'s column: Trellis ÷ it for another proxy, it ÷ Trellis for a
 * Trellis variant (what the variant keeps of the direct link).
 */
export function columnRatio(row: MetricRow, id: ContenderId): number | undefined {
  return isTrellisVariant(id) ? ratioOf(row, id, 'trellis') : ratioOf(row, 'trellis', id);
}

function ratioHeader(id: ContenderId): string {
  return isTrellisVariant(id) ? `${CONTENDER_TITLES[id]} ÷ Trellis` : `Trellis ÷ ${CONTENDER_TITLES[id]}`;
}

export function evaluateTargets(rows: readonly MetricRow[], targets: readonly Target[]): TargetResult[] {
  return targets.map((target) => {
    const row = rows.find((candidate) => candidate.metric === target.metric);
    const subject = target.kind === 'relative' ? target.subject : undefined;
    const base = { metric: target.metric, text: target.text, ...(subject === undefined ? {} : { subject }) };
    if (row === undefined) return { ...base, verdict: 'not measured', measured: 'not run' };
    const compare = (value: number, bound: number): boolean => (row.better === 'higher' ? value >= bound : value <= bound);
    if (target.kind === 'relative') {
      const ratio = ratioOf(row, subject ?? 'trellis', target.versus);
      if (ratio === undefined) return { ...base, verdict: 'not measured', measured: 'no ratio (a figure is missing)' };
      return { ...base, verdict: compare(ratio, target.factor) ? 'met' : 'not met', measured: `${formatRatio(ratio)}` };
    }
    const value = row.cells.trellis;
    if (!isMeasured(value)) return { ...base, verdict: 'not measured', measured: String(value) };
    return { ...base, verdict: compare(value, target.bound) ? 'met' : 'not met', measured: `${formatNumber(value)} ${row.unit}` };
  });
}

/** Three significant digits: more would be noise on a shared machine. */
export function formatNumber(value: number): string {
  const rounded = Number(value.toPrecision(3));
  return Math.abs(rounded) >= 1000 ? rounded.toLocaleString('en-US') : String(rounded);
}

function formatRatio(ratio: number): string {
  return `${ratio >= 100 ? ratio.toFixed(0) : ratio.toPrecision(2)}×`;
}

function formatCell(cell: Cell): string {
  return isMeasured(cell) ? formatNumber(cell) : escapeCell(cell);
}

function escapeCell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function renderMarkdown(results: BenchResults): string {
  const others = results.contenders.filter((id) => id !== 'trellis');
  const { machine } = results;
  const repeats = Number(results.sizes['repeats'] ?? 1);
  const { longLived } = results;
  const kind = longLived === undefined ? `${results.mode} run` : `long-lived ${results.mode} run, ${longLived.roundsDone} of ${longLived.rounds} rounds`;
  const lines = [
    `# Trellis benchmark, ${results.startedAt} (${kind}, ${results.sizesName} sizes, ${Math.round(results.durationSeconds)} s)`,
    '',
    ...(results.complete ? [] : ['**Incomplete**: the run was still going, or was interrupted, when this was written; the figures are those measured so far.', '']),
    ...(longLived === undefined
      ? []
      : [
          `Long-lived: one pair per contender for the whole run; every round ran ${longLived.sequence.join(', ')} in turn on it (contenders taking turns in each). ` +
            `Each figure is the median of the rounds; every round is in the table "Rounds" below, a round more than ${longLived.offMedianFraction * 100} % off the median marked ⚠. ` +
            `Load average (1 min) as each round started: ${longLived.loadAverages.map((load) => load.toFixed(1)).join(', ')}.`,
          '',
        ]),
    ...(results.cpDeadlineSeconds === undefined ? [] : [`Each control-plane size was bounded to ${results.cpDeadlineSeconds} s (\`--cp-deadline\`).`, '']),
    ...(results.sidecarWorkers === undefined ? [] : [`The Trellis sidecars ran with \`--workers ${results.sidecarWorkers}\` (\`--sidecar-workers\`).`, '']),
    `Machine: ${machine.cores} cores (${machine.cpuModel}), ${machine.memoryGiB} GiB, ${machine.kernel}; ` +
      `Node ${machine.node} (OpenSSL ${machine.nodeOpenssl}); system ${machine.systemOpenssl}; ` +
      `${Object.values(machine.tools).join(', ')}; at most ${machine.openFilesLimit} open files per process.`,
    '',
    `Sizes: ${Object.entries(results.sizes).map(([key, value]) => `${key} ${Array.isArray(value) ? value.join('+') : value}`).join(', ')}.`,
    '',
    `Mutual TLS check, a TLS client without a certificate at each server side: ${
      Object.entries(results.mtlsChecks).map(([id, verdict]) => `${CONTENDER_TITLES[id as ContenderId]} ${verdict}`).join('; ') || 'not run'
    }.`,
    '',
    `Load average (1 min) as each workload started: ${Object.entries(results.loadAverages).map(([id, load]) => `${id} ${load.toFixed(1)}`).join(', ')} (on ${machine.cores} cores; above that, other work shared the machine).`,
    '',
    'Ratios are Trellis ÷ the other contender. Where lower is better (ms, s, MB, ns) a ratio below 1 favours Trellis; elsewhere above 1 does.' +
      (others.some(isTrellisVariant) ? ' For Trellis over another link (via gateways, over wss) the ratio is that column ÷ Trellis\'s direct TLS link: what the other link keeps of it.' : '') +
      (repeats > 1 && longLived === undefined ? ` bulk, rr50, rr1 and churn figures are medians of ${repeats} rounds (contenders taking turns); every round is in the JSON.` : ''),
    '',
  ];
  const header = ['figure', 'unit', 'Trellis', ...others.flatMap((id) => [CONTENDER_TITLES[id], ratioHeader(id)]), 'target'];
  lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`);
  const verdicts = new Map<string, TargetResult[]>();
  for (const target of results.targets) verdicts.set(target.metric, [...(verdicts.get(target.metric) ?? []), target]);
  let workload: string | undefined;
  for (const row of results.rows) {
    if (row.workload !== workload) {
      workload = row.workload;
      lines.push(`| **${row.workload}** |${header.slice(1).map(() => ' ').join('|')}|`);
    }
    const cells = [escapeCell(row.label), row.unit, formatCell(row.cells.trellis)];
    for (const id of others) {
      const ratio = columnRatio(row, id);
      cells.push(formatCell(row.cells[id]), ratio === undefined ? '' : formatRatio(ratio));
    }
    const targets = verdicts.get(row.metric) ?? [];
    cells.push(targets.map((target) => `${target.text}: **${target.verdict}** (${escapeCell(target.measured)})`).join('; '));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  const count = (verdict: string): number => results.targets.filter((target) => target.verdict === verdict).length;
  lines.push('', `Targets: ${count('met')} met, ${count('not met')} not met, ${count('not measured')} not measured.`);
  if (longLived !== undefined) lines.push(...renderRounds(results.rows, longLived.rounds));
  if (results.observations.length > 0) {
    lines.push('', '## Observations', '');
    for (const note of results.observations.slice(0, MAX_OBSERVATIONS_SHOWN)) lines.push(`- ${note.replaceAll('\n', ' ').slice(0, 400)}`);
    if (results.observations.length > MAX_OBSERVATIONS_SHOWN) lines.push(`- … ${results.observations.length - MAX_OBSERVATIONS_SHOWN} more in the JSON file`);
  }
  return `${lines.join('\n')}\n`;
}

/** The long-lived mode's table: every round's figure per contender, rounds off the median marked. */
function renderRounds(rows: readonly MetricRow[], rounds: number): string[] {
  const roundHeaders = Array.from({ length: rounds }, (_, index) => `round ${index + 1}`);
  const header = ['figure', 'unit', 'contender', ...roundHeaders, 'median'];
  const lines = ['', '## Rounds', '', `| ${header.join(' | ')} |`, `|${header.map(() => ' --- ').join('|')}|`];
  for (const row of rows) {
    for (const id of CONTENDER_IDS) {
      const cells = row.rounds?.[id];
      if (cells === undefined) continue;
      const flagged = new Set(row.offMedian?.[id] ?? []);
      const shown = roundHeaders.map((_, index) => {
        const cell = cells[index];
        if (cell === undefined) return '';
        return `${formatCell(cell)}${flagged.has(index + 1) ? ' ⚠' : ''}`;
      });
      lines.push(`| ${[escapeCell(row.label), row.unit, CONTENDER_TITLES[id], ...shown, formatCell(row.cells[id])].join(' | ')} |`);
    }
  }
  return lines;
}

/**
 * Writes `<stamp>.json` and `<stamp>.md` into `outDir`; returns both paths. Each file is
 * written beside and renamed over the last, so a run interrupted mid-write leaves a whole file.
 */
export async function writeResults(outDir: string, results: BenchResults): Promise<{ jsonPath: string; markdownPath: string; markdown: string }> {
  await mkdir(outDir, { recursive: true });
  const stamp = results.startedAt.replace(/\.\d+Z$/, 'Z').replaceAll(':', '-');
  const jsonPath = join(outDir, `${stamp}.json`);
  const markdownPath = join(outDir, `${stamp}.md`);
  const markdown = renderMarkdown(results);
  await replaceFile(jsonPath, `${JSON.stringify(results, null, 2)}\n`);
  await replaceFile(markdownPath, markdown);
  return { jsonPath, markdownPath, markdown };
}

async function replaceFile(path: string, text: string): Promise<void> {
  const partial = `${path}.partial`;
  await writeFile(partial, text);
  await rename(partial, path);
}
