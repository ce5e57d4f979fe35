import { readFileSync, statSync } from 'node:fs';
import { UsageError } from './args.js';

/**
 * The join or gateway token of `trellis sidecar`, `gateway` and `run`: from `--token-file`
 * (preferred: a token on the command line is readable by every local user in
 * /proc/PID/cmdline), else `--token`, else the environment variable `envName`. A token file
 * that group or others may access is refused, as ssh refuses such a private key: whoever reads
 * it can join as the service.
 * @throws UsageError for both flags at once, or a token file that is missing, not a regular
 *   file, empty, or accessible by group or others.
 */
export function joinTokenInput(values: { token?: string; 'token-file'?: string }, envName: string): string | undefined {
  const file = values['token-file'];
  if (file === undefined) return values.token ?? process.env[envName];
  if (values.token !== undefined) throw new UsageError('--token and --token-file are mutually exclusive: give the token one way');
  let mode: number;
  try {
    const stats = statSync(file);
    if (!stats.isFile()) throw new UsageError(`--token-file ${file} is not a regular file`);
    mode = stats.mode & 0o777;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read --token-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if ((mode & 0o077) !== 0) {
    throw new UsageError(`--token-file ${file} is accessible by group or others (mode 0${mode.toString(8)}): run chmod 600 ${file}`);
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new UsageError(`cannot read --token-file ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (text === '') throw new UsageError(`--token-file ${file} is empty`);
  return text;
}
