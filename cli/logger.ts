import { pino } from 'pino';
import type { Logger } from 'pino';

/** Structured JSON logs on stderr, so that stdout stays for what a command prints. */
export function createLogger(name: string): Logger {
  const level = process.env['TRELLIS_LOG_LEVEL'] ?? 'info';
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: false }));
}
