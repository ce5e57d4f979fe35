// The fuzzing section written by `npm run fuzz -- --report`: the command that reproduces it,
// each target's figures, and a failure named with the file its input went to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fuzzReport } from './report.js';

const MIB = 1024 * 1024;

describe('fuzz report', () => {
  const base = { command: 'npm run fuzz -- --minutes 12 --target frame-decoder --report', date: new Date('2026-12-03T20:00:00Z'), peakRssBytes: 300 * MIB, loadAverage: [1, 2] as [number, number] };
  const target = { name: 'frame-decoder', inputs: 12_000_000, elapsedMs: 600_000, cpuSeconds: 500, firstRssBytes: 200 * MIB, lastRssBytes: 250 * MIB, failure: undefined };

  it('gives the command, the total and one row per target', () => {
    const lines = fuzzReport({ ...base, targets: [target] }).split('\n');
    assert.ok(lines.includes('Reproduce: `npm run fuzz -- --minutes 12 --target frame-decoder --report` (2026-12-03; load average 1.0 at the start, 2.0 at the end).'));
    assert.ok(lines.includes('12,000,000 inputs, no crash, no untyped error, no slow input; peak RSS of the run 300 MiB.'));
    assert.ok(lines.includes('| frame-decoder | 12,000,000 | 600 | 20,000 | 24,000 | 200 → 250 | none |'));
  });

  it('names a failing target and where its input was written', () => {
    const failing = { ...target, name: 'tokens', failure: 'test/fuzz/corpus/tokens/x.json' };
    const lines = fuzzReport({ ...base, targets: [target, failing] }).split('\n');
    assert.ok(lines.includes('24,000,000 inputs, 1 target(s) failed; peak RSS of the run 300 MiB.'));
    assert.ok(lines.includes('| tokens | 12,000,000 | 600 | 20,000 | 24,000 | 200 → 250 | failed: `test/fuzz/corpus/tokens/x.json` |'));
  });
});
