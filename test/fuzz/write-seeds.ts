/**
 * Writes every target's hand-made seeds to `test/fuzz/corpus/<target>/seed-<name>.json`:
 * `node dist/test/fuzz/write-seeds.js` after changing a `seeds()` list. Files the runner
 * found (`found-*.json`) are left alone.
 */
import { writeCorpusFile } from './corpus.js';
import { FUZZ_TARGETS } from './targets.js';

for (const target of FUZZ_TARGETS) {
  const seeds = target.seeds() as { name: string; note: string; input: unknown }[];
  for (const seed of seeds) writeCorpusFile(target, seed.input, seed.note, `seed-${seed.name}`);
  console.log(`${target.name}: ${seeds.length} seeds`);
}
