// The soak section of docs/reliability.md.
import { RESTARTED_ROLE } from './soak.js';
import type { SoakResult } from './soak.js';
import { SERIES_LABELS } from './sampler.js';

const round = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '—');

export function soakMarkdown(result: SoakResult, info: { command: string; startedAt: Date; plot: string }): string {
  const { options, streams } = result;
  const lines: string[] = ['## Soak', ''];
  lines.push(`Reproduce: \`${info.command}\` (as root). Run ${info.startedAt.toISOString()}, ${Math.round(result.wallMs / 1000)} s in all, ${options.minutes} min of traffic, a sample of every process every ${(options.sampleEveryMs ?? 5000) / 1000} s.`, '');
  lines.push(
    `Workload: from the client sidecar, a bulk stream (1 MiB) every half second, two loops of short connections (32 KiB, 100 ms apart: connection churn) and four connections idle for the whole run, to echo-a${options.gateways ? ' and, through gateways, to echo-b' : ''}; a policy set or removed every ${(options.pushEveryMs ?? 10_000) / 1000} s (config pushes); leaf certificates with a ${options.certTtl ?? '1m'} TTL (renewed at half-life); the server sidecar of echo-a SIGKILLed and restarted every ${(options.restartEveryMs ?? 60_000) / 1000} s.`,
    '',
  );
  lines.push(`Result: **${result.problems.length === 0 ? 'pass' : 'FAIL'}**. Streams: ${streams.streams} (${Object.entries(streams.byVerdict).map(([verdict, count]) => `${verdict} ${count}`).join(', ')}), ${(streams.bytesCarried / 1024 / 1024).toFixed(0)} MiB carried whole, ${streams.bytesLost} bytes lost. Config pushes: ${result.pushes.ok} ok, ${result.pushes.failed} failed. Restarts: ${result.restarts}. Certificate renewals: ${Object.entries(result.renewals).map(([role, count]) => `${role} ${count}`).join(', ') || 'none'}.`, '');
  for (const problem of result.problems) lines.push(`- **problem**: ${problem}`);
  if (result.problems.length > 0) lines.push('');
  lines.push(`![soak](${info.plot})`, '');
  lines.push(
    `Trends: a least-squares line through the floor of each series (the lowest sample of each of 8 windows, so that a garbage-collected heap's sawtooth does not pass for a trend and a leak shows as a rising floor) after the first ${Math.round((options.warmUpShare ?? 0.3) * 100)} % of the run; a series fails when its slope is above the floor **and** more than three standard errors above zero. ${RESTARTED_ROLE} is restarted on purpose, so its series are plotted but not fitted. CPU is CPU time from /proc (user + system), not wall time.`,
    '',
  );
  lines.push('| process | series | first | last | max | slope /min | ± s.e. | floor /min | verdict |');
  lines.push('| --- | --- | --: | --: | --: | --: | --: | --: | --- |');
  for (const row of result.trends) {
    const t = row.trend;
    lines.push(`| ${row.role} | ${SERIES_LABELS[row.series]} | ${round(t.first)} | ${round(t.last)} | ${round(t.max)} | ${round(t.slopePerMinute, 3)} | ${round(t.standardError, 3)} | ${row.floorPerMinute} | ${row.up ? '**up**' : 'flat'} |`);
  }
  lines.push('');
  lines.push('| process | CPU seconds over the run | CPU share of one core |');
  lines.push('| --- | --: | --: |');
  for (const [role, seconds] of Object.entries(result.cpuSeconds)) {
    lines.push(`| ${role} | ${round(seconds ?? 0, 1)} | ${round(((seconds ?? 0) / (options.minutes * 60)) * 100, 1)} % |`);
  }
  lines.push('');
  return lines.join('\n');
}
