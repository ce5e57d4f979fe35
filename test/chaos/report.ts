// The chaos section of docs/reliability.md, from the results of a run.
import type { ScenarioResult } from './runner.js';

const mib = (bytes: number): string => (bytes / 1024 / 1024).toFixed(1);
/** Temporary directories of the run, as they appear in error messages, without this machine's paths. */
const scrub = (text: string): string => text.replace(/\/\S*?trellis-chaos-[A-Za-z0-9-]+/g, 'DATA_DIR');

export interface ChaosRunInfo {
  readonly command: string;
  readonly startedAt: Date;
  readonly wallMs: number;
  readonly environment: readonly string[];
}

export function chaosMarkdown(results: readonly ScenarioResult[], info: ChaosRunInfo): string {
  const lines: string[] = [];
  lines.push('## Chaos', '');
  lines.push(`Reproduce: \`${info.command}\` (as root: it builds network namespaces and mounts a tmpfs). Run ${info.startedAt.toISOString()}, ${Math.round(info.wallMs / 1000)} s.`, '');
  lines.push(
    'Each scenario runs mixed traffic from the client sidecar (host a1) — bulk streams, loops of short connections, connections idle for the whole run — to echo-a in its own zone (a2; drain-server-a adds a second server sidecar of echo-a in a3) and, with gateways, to echo-b in zone b (through ga1/ga2 and gb), while it injects its faults.',
    'Every stream is matched with the server app\'s record of it by a random id. *Whole*: the echo came back byte-exact and the server saw a clean end with the same sha256. *Reset, both told*: the client app got a socket error and the server app got one too (or never saw the stream). *Untold*: anything else — a silent truncation or change (bytes lost), a reset only one end heard of, a stream left hanging. *Known limit*, counted apart — when the sidecar next to an app dies by SIGKILL, the kernel closes that app\'s connection with a FIN (not a reset) unless unread bytes were queued, so that app sees a clean end while the far app is told; only SO_LINGER 0 on the app-side sockets would turn it into a reset, and Node does not expose it. The same column counts a reset after the server app had every byte, ended and closed (a gateway died with the echo on its way): the client is told, and a closed connection cannot be — plain TCP loses a last response the same way.',
    '*Recovery*: per fault, from its end (the restart issued, the partition healed, the impairment removed) to the end of the last short connection that failed after it and before the next fault began (a connection in flight when the next fault strikes fails by that fault, not for want of recovery from this one); the largest is shown.',
    '',
  );
  lines.push('| scenario | faults | streams (bulk/short/idle/other) | whole | reset, both told | as the app asked | untold | known limit | carried MiB | bytes lost | bytes missed (known limit) | recovery ms | result |');
  lines.push('| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |');
  for (const result of results) {
    const t = result.tally;
    const k = t.byKind;
    const other = (k.slow ?? 0) + (k.noread ?? 0) + (k.reset ?? 0);
    const kinds = `${t.streams} (${k.bulk ?? 0}/${k.short ?? 0}/${k.idle ?? 0}/${other})`;
    const recovery = result.recoveryMs.length === 0 ? '—' : String(Math.max(...result.recoveryMs));
    lines.push(
      `| ${result.name} | ${result.faults.length} | ${kinds} | ${t.byVerdict.whole ?? 0} | ${t.byVerdict['reset-both'] ?? 0} | ${t.byVerdict.expected ?? 0} | ${t.untold} | ${t.knownLimit} | ${mib(t.bytesCarried)} | ${t.bytesLost} | ${t.bytesLostKnownLimit} | ${recovery} | ${result.problems.length === 0 ? 'pass' : '**FAIL**'} |`,
    );
  }
  lines.push('');
  for (const result of results) {
    lines.push(`### ${result.name}: ${result.title}`, '');
    for (const fault of result.faults) lines.push(`- fault: ${fault.what} (${fault.endsAt - fault.at} ms)`);
    if (result.recoveryMs.length > 0) lines.push(`- recovery per fault (ms): ${result.recoveryMs.join(', ')}`);
    const verdicts = Object.entries(result.tally.byVerdict).map(([verdict, count]) => `${verdict} ${count}`).join(', ');
    lines.push(`- streams: ${verdicts}`);
    for (const note of result.notes) lines.push(`- ${scrub(note)}`);
    for (const problem of result.problems) lines.push(`- **problem**: ${scrub(problem).replaceAll('|', '\\|')}`);
    lines.push('');
  }
  if (info.environment.length > 0) {
    lines.push('### Environment', '');
    for (const line of info.environment) lines.push(`- ${line}`);
    lines.push('');
  }
  return lines.join('\n');
}
