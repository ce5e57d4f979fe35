import { UsageError } from './args.js';
import type { Styler } from './style.js';

/** `json`: one JSON object per line, for log collectors. `pretty`: one readable line, for people. */
export type LogFormat = 'json' | 'pretty';

/** The `--log-format` flag, for `parseFlags`. */
export const logFormatOption = { 'log-format': { type: 'string' } } as const;

/** Help line of {@link logFormatOption}. */
export const logFormatHelp = `  --log-format json|pretty  logs on stderr: pretty on a terminal, JSON lines otherwise (default)`;

/** `--log-format`, else `TRELLIS_LOG_FORMAT`, else pretty on a terminal and JSON otherwise. */
export function parseLogFormat(flag: string | undefined, isTty: boolean, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const [text, source] = flag !== undefined ? [flag, '--log-format'] : [env['TRELLIS_LOG_FORMAT'], 'TRELLIS_LOG_FORMAT'];
  if (text === undefined || text === '') return isTty ? 'pretty' : 'json';
  if (text !== 'json' && text !== 'pretty') throw new UsageError(`${source} must be json or pretty, got "${text}"`);
  return text;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_STYLES: Record<number, Parameters<Styler['style']>[0]> = { 10: 'gray', 20: 'gray', 30: 'green', 40: 'yellow', 50: 'red', 60: ['red', 'bold'] };
/** Fields every line has, shown in the line's head rather than as `key=value`. */
const HEAD_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/**
 * Turns one of pino's JSON lines into `12:00:01.250 INFO  sidecar:web  msg  key=value …`
 * (local time; errors as their type and message). A line that is not JSON passes as it is.
 */
export function formatPrettyLine(jsonLine: string, styler: Styler): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(jsonLine) as Record<string, unknown>;
  } catch {
    return jsonLine;
  }
  const level = typeof entry['level'] === 'number' ? entry['level'] : 30;
  const time = typeof entry['time'] === 'number' ? new Date(entry['time']) : new Date();
  const clock = `${pad(time.getHours())}:${pad(time.getMinutes())}:${pad(time.getSeconds())}.${String(time.getMilliseconds()).padStart(3, '0')}`;
  const parts = [
    styler.style('gray', clock),
    styler.style(LEVEL_STYLES[level] ?? 'white', (LEVEL_NAMES[level] ?? String(level)).padEnd(5)),
    typeof entry['name'] === 'string' ? styler.style('cyan', entry['name']) : undefined,
    typeof entry['msg'] === 'string' ? entry['msg'] : undefined,
  ];
  const fields = Object.entries(entry)
    .filter(([key]) => !HEAD_FIELDS.has(key))
    .map(([key, value]) => `${styler.style('gray', `${key}=`)}${formatValue(value)}`);
  return `${[...parts.filter((part) => part !== undefined), ...fields].join('  ')}\n`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (isSerializedError(value)) return JSON.stringify(`${value.type ?? 'Error'}${value.code === undefined ? '' : ` [${value.code}]`}: ${value.message}`);
  return JSON.stringify(value) ?? String(value);
}

function isSerializedError(value: unknown): value is { type?: string; message: string; code?: string | number } {
  return typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string' && typeof (value as { stack?: unknown }).stack === 'string';
}

function pad(value: number): string {
  return String(value).padStart(2, '0');
}
