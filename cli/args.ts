import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { ValidationError } from '../proto/errors.js';

/** A mistake in how the command was called: printed with a hint to `--help`, exit code 2. */
export class UsageError extends ValidationError {
  constructor(message: string) {
    super(message, 'TRELLIS_ERR_USAGE');
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses flags strictly: an unknown flag or a missing value is a UsageError naming it. */
export function parseFlags<T extends Options>(args: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^TypeError \[[A-Z_]+\]: /, ''));
  }
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
