import { pino } from 'pino';
import type { Logger } from 'pino';
import { UsageError } from './args.js';
import type { LogFormat } from './log-format.js';
import { formatPrettyLine } from './log-format.js';
import { stylerFor } from './style.js';

/**
 * Structured logs on stderr, so that stdout stays for what a command prints: JSON lines, or
 * readable lines for a terminal (formatted here, in the process: no transport thread).
 */
export function createLogger(name: string, format: LogFormat = process.stderr.isTTY ? 'pretty' : 'json'): Logger {
  const level = process.env['TRELLIS_LOG_LEVEL'] ?? 'info';
  if (format === 'json') return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
  const styler = stylerFor(process.stderr);
  return pino({ name, level, base: undefined }, { write: (line: string) => void process.stderr.write(formatPrettyLine(line, styler)) });
}

/** Logs as JSON lines appended to `path`, written synchronously so that none is lost at exit. */
export function createFileLogger(name: string, path: string): Logger {
  let destination;
  try {
    destination = pino.destination({ dest: path, append: true, sync: true });
  } catch (error) {
    throw new UsageError(`--log-file: cannot open "${path}": ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return pino({ name, level: process.env['TRELLIS_LOG_LEVEL'] ?? 'info', base: { pid: process.pid } }, destination);
}
