/**
 * The corpus: `test/fuzz/corpus/<target>/*.json`, one input per file, replayed by
 * `corpus.test.ts` and by the runner before it fuzzes. Hand-made seeds and failing inputs the
 * runner found live side by side; a found input stays as a regression input once fixed.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AnyFuzzTarget, JsonValue } from './fuzz-target.js';

/** The source tree's corpus, also when this module runs compiled from `dist/test/fuzz/`. */
export const CORPUS_DIR = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../test/fuzz/corpus/' : './corpus/', import.meta.url));

/** One corpus file. */
export interface CorpusFile {
  target: string;
  name: string;
  note: string;
  input: JsonValue;
}

export function targetCorpusDir(target: AnyFuzzTarget): string {
  return `${CORPUS_DIR}${target.name}/`;
}

/** Every corpus file of `target`, in name order, with its path. */
export function readCorpus(target: AnyFuzzTarget): { path: string; file: CorpusFile; input: unknown }[] {
  const dir = targetCorpusDir(target);
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((name) => {
    const path = dir + name;
    const file = JSON.parse(readFileSync(path, 'utf8')) as CorpusFile;
    return { path, file, input: target.fromJson(file.input) };
  });
}

/** Writes `input` as `<prefix>-<hash>.json` (or `<name>.json`) and returns its path. */
export function writeCorpusFile(target: AnyFuzzTarget, input: unknown, note: string, name?: string): string {
  const json = target.toJson(input);
  const text = JSON.stringify(json);
  const stem = name ?? `found-${createHash('sha256').update(text).digest('hex').slice(0, 12)}`;
  const file: CorpusFile = { target: target.name, name: stem, note, input: json };
  mkdirSync(targetCorpusDir(target), { recursive: true });
  const path = `${targetCorpusDir(target)}${stem}.json`;
  writeFileSync(path, `${JSON.stringify(file, null, 2)}\n`);
  return path;
}
