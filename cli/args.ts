import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { ValidationError } from '../proto/errors.js';
import type { ConfigFileSpec } from './config-file.js';
import { expandConfigFile } from './config-file.js';

/** A mistake in how the command was called: printed with a hint to `--help`, exit code 2. */
export class UsageError extends ValidationError {
  constructor(message: string) {
    super(message, 'TRELLIS_ERR_USAGE');
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses flags strictly: an unknown flag or a missing value is a UsageError naming it, with
 * the closest known flag when the unknown one looks like a typo of it. With `configFile`, the
 * command takes `--config FILE.yaml` too: the file's values, overridden by the flags given.
 */
export function parseFlags<T extends Options>(args: string[], options: T, allowPositionals = false, configFile?: ConfigFileSpec) {
  const expanded = configFile === undefined ? args : expandConfigFile(args, options, configFile);
  try {
    return parseArgs({ args: expanded, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (error) {
    const message = (error as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, '');
    const unknown = /^Unknown option '--([^'=]+)'/.exec(message)?.[1];
    const suggestion = unknown === undefined ? undefined : closest(unknown, [...Object.keys(options), 'help']);
    throw new UsageError(suggestion === undefined ? message : `unknown flag --${unknown} (did you mean --${suggestion}?)`);
  }
}

/** The candidate nearest to `word` by edit distance, when it is near enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(word, candidate);
    if (best === undefined || distance < best.distance) best = { candidate, distance };
  }
  // One edit in four characters, at least one: "lisen" → "listen", not "zone" → "name".
  return best !== undefined && best.distance <= Math.max(1, Math.floor(word.length / 4)) ? best.candidate : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The control plane URLs of `--control-plane` (repeatable), else `TRELLIS_CONTROL_PLANE` (comma-separated). */
export function controlPlaneUrls(flag: string | string[] | undefined, env: NodeJS.ProcessEnv = process.env): string[] {
  const given = flag === undefined ? [] : Array.isArray(flag) ? flag : [flag];
  if (given.length > 0) return given.map((url) => parseControlPlaneUrl(url));
  const fromEnv = (env['TRELLIS_CONTROL_PLANE'] ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '');
  if (fromEnv.length === 0) throw new UsageError('missing --control-plane (or the TRELLIS_CONTROL_PLANE environment variable)');
  return fromEnv.map((url) => parseControlPlaneUrl(url, 'TRELLIS_CONTROL_PLANE'));
}

/** The value of a required flag, or a UsageError naming it. */
export function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing ${flag}`);
  return value;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `90s`, `15m`, `24h`, `7d` (or plain seconds) into milliseconds. */
export function parseDurationMs(text: string, flag: string): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (match === null) throw new UsageError(`${flag} must be a duration like 90s, 15m, 24h or 7d, got "${text}"`);
  const value = Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? 's'] ?? 1000);
  if (value <= 0) throw new UsageError(`${flag} must be more than zero`);
  return value;
}

/** Checks a control-plane URL: `https://host:port`. */
export function parseControlPlaneUrl(text: string, flag = '--control-plane'): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`${flag} must be a URL like https://127.0.0.1:7400, got "${text}"`);
  }
  if (url.protocol !== 'https:') throw new UsageError(`${flag} must be an https:// URL, got "${text}"`);
  return url.origin;
}
