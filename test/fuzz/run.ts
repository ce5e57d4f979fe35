/**
 * `npm run fuzz -- --minutes N [--target NAME]...`: replays the corpus, then fuzzes each
 * target for its share of the time, printing inputs per second as it goes. A failing input is
 * written to `test/fuzz/corpus/<target>/` and the run exits 1; bad arguments exit 2.
 */
import { loadavg } from 'node:os';
import { relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readCorpus, writeCorpusFile } from './corpus.js';
import { checkInput, DEFAULT_SLOW_INPUT_MS, fuzzTarget } from './engine.js';
import type { FuzzProgress } from './engine.js';
import type { AnyFuzzTarget } from './fuzz-target.js';
import { FUZZ_TARGETS } from './targets.js';
import { writeSection } from '../chaos/report-file.js';
import type { FuzzTargetResult } from './report.js';
import { fuzzReport } from './report.js';

const PROGRESS_INTERVAL_MS = 5_000;
const MIB = 1024 * 1024;

const USAGE = `usage: npm run fuzz -- --minutes N [--target NAME]... [--seed N] [--slow-ms N] [--report]
  --minutes N   total time, shared equally by the targets (default 1; fractions allowed)
  --target NAME fuzz only NAME (repeatable, or comma-separated); one of:
                ${FUZZ_TARGETS.map((target) => target.name).join(', ')}
  --seed N      seed of each target's first batch (later batches take fresh seeds)
  --slow-ms N   an input that takes longer counts as a failure (default ${DEFAULT_SLOW_INPUT_MS})
  --report      write the figures to the fuzzing section of docs/reliability.md`;

interface RunOptions {
  minutes: number;
  targets: AnyFuzzTarget[];
  seed: number | undefined;
  slowInputMs: number;
  report: boolean;
}

function parseOptions(argv: string[]): RunOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string', default: '1' },
      target: { type: 'string', multiple: true },
      seed: { type: 'string' },
      'slow-ms': { type: 'string', default: String(DEFAULT_SLOW_INPUT_MS) },
      report: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) {
    console.log(USAGE);
    process.exit(0);
  }
  const minutes = Number(values.minutes);
  const slowInputMs = Number(values['slow-ms']);
  const seed = values.seed === undefined ? undefined : Number(values.seed);
  if (!(minutes > 0) || !(slowInputMs > 0) || (seed !== undefined && !Number.isSafeInteger(seed))) usageError('bad --minutes, --slow-ms or --seed');
  const names = (values.target ?? []).flatMap((name) => name.split(',')).filter((name) => name !== '');
  const unknown = names.filter((name) => !FUZZ_TARGETS.some((target) => target.name === name));
  if (unknown.length > 0) usageError(`unknown target ${unknown.join(', ')}`);
  const targets = names.length === 0 ? [...FUZZ_TARGETS] : FUZZ_TARGETS.filter((target) => names.includes(target.name));
  return { minutes, targets, seed, slowInputMs, report: values.report };
}

function usageError(message: string): never {
  console.error(`fuzz: ${message}\n${USAGE}`);
  process.exit(2);
}

/** Peak resident set size of this process so far, in bytes (the kernel's high-water mark). */
function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(0)} MiB`;
}

function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** CPU seconds (user and system) this process spent since `since`: rates that other load on the machine does not skew. */
function cpuSeconds(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return Math.max((used.user + used.system) / 1e6, 1e-3);
}

function errorReport(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `\n  caused by ${error.cause.stack ?? error.cause.message}` : '';
  return `${error.stack ?? error.message}${cause}`;
}

/** Replays the corpus of `target`; returns the number of inputs that fail. */
function replay(target: AnyFuzzTarget, slowInputMs: number): number {
  let failures = 0;
  const corpus = readCorpus(target);
  for (const { path, input } of corpus) {
    try {
      checkInput(target, input, slowInputMs);
    } catch (error) {
      failures += 1;
      console.log(`${target.name.padEnd(16)} corpus input ${path} FAILS:\n  ${errorReport(error)}`);
    }
  }
  console.log(`${target.name.padEnd(16)} replayed ${corpus.length} corpus inputs: ${failures === 0 ? 'ok' : `${failures} failing`}`);
  return failures;
}

function main(): void {
  const options = parseOptions(process.argv.slice(2));
  const shareMs = (options.minutes * 60_000) / options.targets.length;
  console.log(`fuzz: ${options.targets.length} target(s), ${options.minutes} min in all (${(shareMs / 1000).toFixed(1)} s each), slow-input limit ${options.slowInputMs} ms`);
  let failed = false;
  for (const target of options.targets) failed = replay(target, options.slowInputMs) > 0 || failed;

  const started = performance.now();
  const loadAtStart = loadavg()[0] ?? 0;
  const results: FuzzTargetResult[] = [];
  let totalInputs = 0;
  let sampledRssPeak = 0;
  const summary: string[] = [];
  for (const target of options.targets) {
    let lastPrintMs = 0;
    const cpuStarted = process.cpuUsage();
    let firstRssBytes = 0;
    let lastRssBytes = 0;
    const onBatch = (progress: FuzzProgress): void => {
      const rss = process.memoryUsage().rss;
      sampledRssPeak = Math.max(sampledRssPeak, rss);
      if (firstRssBytes === 0) firstRssBytes = rss;
      lastRssBytes = rss;
      if (progress.elapsedMs - lastPrintMs < PROGRESS_INTERVAL_MS) return;
      lastPrintMs = progress.elapsedMs;
      const rate = progress.inputs / (progress.elapsedMs / 1000);
      console.log(
        `${target.name.padEnd(16)} ${(progress.elapsedMs / 1000).toFixed(0).padStart(5)} s  ${count(progress.inputs).padStart(12)} inputs  ${count(rate).padStart(8)}/s  ` +
          `(${count(progress.inputs / cpuSeconds(cpuStarted))}/cpu-s)  ` +
          `total ${count(totalInputs + progress.inputs)}  rss ${mib(rss)} (peak ${mib(peakRssBytes())})`,
      );
    };
    const result = fuzzTarget(target, { durationMs: shareMs, onBatch, slowInputMs: options.slowInputMs, ...(options.seed === undefined ? {} : { seed: options.seed }) });
    totalInputs += result.inputs;
    const rate = result.inputs / Math.max(result.elapsedMs / 1000, 1e-3);
    const targetResult: FuzzTargetResult = { name: target.name, inputs: result.inputs, elapsedMs: result.elapsedMs, cpuSeconds: cpuSeconds(cpuStarted), firstRssBytes, lastRssBytes, failure: undefined };
    results.push(targetResult);
    let line = `${target.name.padEnd(16)} ${count(result.inputs).padStart(12)} inputs in ${(result.elapsedMs / 1000).toFixed(1)} s (${count(rate)}/s, ${count(result.inputs / cpuSeconds(cpuStarted))} per CPU second)`;
    if (result.finding !== undefined) {
      failed = true;
      const { finding } = result;
      const note = `${finding.error instanceof Error ? finding.error.message : String(finding.error)} (fast-check seed ${finding.seed}, path ${finding.path ?? '-'})`;
      const path = writeCorpusFile(target, finding.input, note);
      console.log(`${target.name.padEnd(16)} FAILURE after ${count(result.inputs)} inputs, seed ${finding.seed}, path ${finding.path ?? '-'}\n  ${errorReport(finding.error)}\n  input written to ${path}`);
      line += `  FAILED: ${path}`;
      targetResult.failure = relative(process.cwd(), path);
    } else line += '  ok';
    summary.push(line);
  }
  const elapsedS = (performance.now() - started) / 1000;
  console.log(`\n${summary.join('\n')}`);
  console.log(
    `total: ${count(totalInputs)} inputs in ${elapsedS.toFixed(1)} s (${count(totalInputs / Math.max(elapsedS, 1e-3))}/s); ` +
      `peak RSS ${mib(peakRssBytes())} (sampled ${mib(sampledRssPeak)}), heap used now ${mib(process.memoryUsage().heapUsed)}`,
  );
  if (options.report) {
    const command = `npm run fuzz -- ${process.argv.slice(2).join(' ')}`;
    writeSection('fuzz', fuzzReport({ command, date: new Date(), targets: results, peakRssBytes: peakRssBytes(), loadAverage: [loadAtStart, loadavg()[0] ?? 0] }));
    console.log('fuzz: wrote docs/reliability.md');
  }
  console.log(failed ? 'fuzz: FAILED' : 'fuzz: ok');
  process.exitCode = failed ? 1 : 0;
}

main();
