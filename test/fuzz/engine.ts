/**
 * Runs one target for a given time: fast-check checks in batches, each with a new seed, cut
 * off at the deadline, until a property breaks or time is up. No I/O: the runner and the
 * corpus test print and write what it returns.
 */
import { performance } from 'node:perf_hooks';
import fc from 'fast-check';
import { FuzzFailure } from './fuzz-target.js';
import type { AnyFuzzTarget } from './fuzz-target.js';

/** Longest one input may take before it counts as a failure (a parser that stalls the event loop). */
export const DEFAULT_SLOW_INPUT_MS = 1_000;

export interface FuzzOptions {
  durationMs: number;
  /** Seed of the first batch; later batches take fresh random seeds. @default random */
  seed?: number;
  /** @default DEFAULT_SLOW_INPUT_MS */
  slowInputMs?: number;
  /** Called after every batch with the totals so far. */
  onBatch?: (progress: FuzzProgress) => void;
}

export interface FuzzProgress {
  /** Inputs checked, shrinking included. */
  inputs: number;
  batches: number;
  elapsedMs: number;
}

export interface FuzzFinding {
  /** The shrunk input that breaks the property. */
  input: unknown;
  error: unknown;
  seed: number;
  /** fast-check's replay path for `seed`. */
  path: string | null;
}

export interface FuzzResult extends FuzzProgress {
  finding: FuzzFinding | undefined;
}

/** Batches are sized to take about this long, so the deadline and progress stay close. */
const BATCH_TARGET_MS = 500;

/** Inputs checked and the last one that failed, shared between a property and its run. */
interface PropertyState {
  inputs: number;
  lastFailing: { input: unknown } | undefined;
}

/** The property of `target` over groups of inputs, with the time limit every input must keep. */
function targetProperty(target: AnyFuzzTarget, slowInputMs: number, state: PropertyState): fc.IProperty<[readonly unknown[]]> {
  return fc.property(target.arbitrary, (group) => {
    for (const input of group) {
      state.inputs += 1;
      try {
        checkInput(target, input, slowInputMs);
      } catch (error) {
        // fast-check's counterexample is the last group that failed, so this is its input.
        state.lastFailing = { input };
        throw error;
      }
    }
  });
}

/** Checks one input outside fast-check (corpus replay), with the same time limit. */
export function checkInput(target: AnyFuzzTarget, input: unknown, slowInputMs = DEFAULT_SLOW_INPUT_MS): void {
  const started = performance.now();
  target.check(input);
  const elapsedMs = performance.now() - started;
  if (elapsedMs > slowInputMs) throw new FuzzFailure('slow-input', `one input took ${elapsedMs.toFixed(0)} ms (limit ${slowInputMs} ms)`);
}

/**
 * Runs `run` with stack traces off: the parsers throw an error for most fuzzed inputs, and
 * capturing its stack was an eighth of the time. A finding is re-run with stacks on.
 */
function withoutStacks<T>(run: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return run();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** The error `input` raises again, now with its stack, or `fallback` if it passes this time. */
function errorWithStack(target: AnyFuzzTarget, input: unknown, slowInputMs: number, fallback: unknown): unknown {
  try {
    checkInput(target, input, slowInputMs);
  } catch (error) {
    return error;
  }
  return fallback;
}

export function fuzzTarget(target: AnyFuzzTarget, options: FuzzOptions): FuzzResult {
  const started = performance.now();
  const deadline = started + options.durationMs;
  const slowInputMs = options.slowInputMs ?? DEFAULT_SLOW_INPUT_MS;
  const state: PropertyState = { inputs: 0, lastFailing: undefined };
  const property = targetProperty(target, slowInputMs, state);
  let seed = options.seed ?? randomSeed();
  let runsPerBatch = 50;
  const progress: FuzzProgress = { inputs: 0, batches: 0, elapsedMs: 0 };
  for (;;) {
    const batchStarted = performance.now();
    const remainingMs = deadline - batchStarted;
    if (remainingMs <= 0) break;
    const details = withoutStacks(() => fc.check(property, { numRuns: runsPerBatch, seed, interruptAfterTimeLimit: Math.ceil(remainingMs) }));
    const batchMs = performance.now() - batchStarted;
    progress.inputs = state.inputs;
    progress.batches += 1;
    progress.elapsedMs = performance.now() - started;
    if (details.failed && state.lastFailing !== undefined) {
      const { input } = state.lastFailing;
      const error = errorWithStack(target, input, slowInputMs, details.errorInstance);
      return { ...progress, finding: { input, error, seed: details.seed, path: details.counterexamplePath } };
    }
    options.onBatch?.(progress);
    if (details.interrupted) break;
    // Aim every batch at BATCH_TARGET_MS, growing or shrinking by at most 4x at a time.
    const perRunMs = batchMs / Math.max(1, details.numRuns);
    runsPerBatch = Math.max(10, Math.min(runsPerBatch * 4, Math.ceil(BATCH_TARGET_MS / Math.max(perRunMs, 1e-6)), 1_000_000));
    seed = randomSeed();
  }
  return { ...progress, finding: undefined };
}

function randomSeed(): number {
  return (Math.random() * 0x7fffffff) | 0;
}
