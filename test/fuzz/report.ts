// The fuzzing section of docs/reliability.md, from the results of `npm run fuzz -- --report`.

/** What one target's run did. */
export interface FuzzTargetResult {
  name: string;
  inputs: number;
  elapsedMs: number;
  cpuSeconds: number;
  /** RSS at the first batch and at the last, in bytes: memory bounded means the two stay close. */
  firstRssBytes: number;
  lastRssBytes: number;
  /** Where the failing input was written, when one failed. */
  failure: string | undefined;
}

export interface FuzzRun {
  command: string;
  date: Date;
  targets: FuzzTargetResult[];
  peakRssBytes: number;
  /** The machine's 1-minute load average at the start and the end: other work skews the rates. */
  loadAverage: [number, number];
}

const MIB = 1024 * 1024;

function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export function fuzzReport(run: FuzzRun): string {
  const total = run.targets.reduce((sum, target) => sum + target.inputs, 0);
  const failed = run.targets.filter((target) => target.failure !== undefined);
  const rows = run.targets.map((target) => {
    const seconds = target.elapsedMs / 1000;
    const rss = `${(target.firstRssBytes / MIB).toFixed(0)} → ${(target.lastRssBytes / MIB).toFixed(0)}`;
    return `| ${target.name} | ${count(target.inputs)} | ${seconds.toFixed(0)} | ${count(target.inputs / Math.max(seconds, 1e-3))} | ${count(target.inputs / Math.max(target.cpuSeconds, 1e-3))} | ${rss} | ${target.failure === undefined ? 'none' : `failed: \`${target.failure}\``} |`;
  });
  return [
    '## Fuzzing',
    '',
    `Reproduce: \`${run.command}\` (${run.date.toISOString().slice(0, 10)}; load average ${run.loadAverage[0].toFixed(1)} at the start, ${run.loadAverage[1].toFixed(1)} at the end).`,
    'Each input is checked to be refused with a typed error (a `TrellisError` with its code) or accepted, within the slow-input limit; the corpus in `test/fuzz/corpus/` is replayed first and by the tests.',
    '',
    `${count(total)} inputs, ${failed.length === 0 ? 'no crash, no untyped error, no slow input' : `${failed.length} target(s) failed`}; peak RSS of the run ${(run.peakRssBytes / MIB).toFixed(0)} MiB.`,
    '',
    '| target | inputs | seconds | inputs/s | per CPU second | RSS MiB, first → last batch | finding |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
