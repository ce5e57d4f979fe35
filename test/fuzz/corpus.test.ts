/**
 * The fuzz corpus as a regression suite, and a short fuzz of every target: each corpus input
 * must keep its target's property, and each target runs for a couple of seconds so that CI
 * fuzzes a little on every run (`npm run fuzz` runs for longer).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readCorpus } from './corpus.js';
import { checkInput, fuzzTarget } from './engine.js';
import { FUZZ_TARGETS } from './targets.js';

/** Per target: eight targets stay well under the suite's 25 s. */
const SHORT_FUZZ_MS = 2_000;

describe('fuzz corpus', () => {
  for (const target of FUZZ_TARGETS) {
    it(`${target.name}: every corpus input keeps the property`, () => {
      const corpus = readCorpus(target);
      assert.ok(corpus.length > 0, `no corpus inputs for ${target.name}`);
      const failures: string[] = [];
      for (const { path, file, input } of corpus) {
        assert.equal(file.target, target.name, `${path} belongs to ${file.target}`);
        try {
          checkInput(target, input);
        } catch (error) {
          failures.push(`${path}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      assert.deepEqual(failures, []);
    });

    it(`${target.name}: the seeds written to the corpus round-trip through JSON`, () => {
      for (const seed of target.seeds() as { name: string; input: unknown }[]) {
        const json = JSON.parse(JSON.stringify(target.toJson(seed.input))) as unknown;
        assert.deepEqual(target.toJson(target.fromJson(json)), target.toJson(seed.input), seed.name);
      }
    });
  }
});

describe('short fuzz', () => {
  for (const target of FUZZ_TARGETS) {
    it(`${target.name}: ${SHORT_FUZZ_MS} ms of generated inputs keep the property`, () => {
      const result = fuzzTarget(target, { durationMs: SHORT_FUZZ_MS });
      const { finding } = result;
      assert.ok(result.inputs > 0, 'no input was checked');
      assert.equal(
        finding,
        undefined,
        finding && `${target.name} failed (seed ${finding.seed}, path ${finding.path ?? '-'}): ${finding.error instanceof Error ? finding.error.message : String(finding.error)}\n` +
          `input: ${JSON.stringify(target.toJson(finding.input))}`,
      );
    });
  }
});
