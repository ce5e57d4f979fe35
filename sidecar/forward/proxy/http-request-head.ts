import { ProxyError } from './errors.js';

/** Most header fields a proxied request may carry. */
export const MAX_HTTP_HEADER_COUNT = 100;

/** A parsed HTTP/1.x request head (request line and header fields, in order, as sent). */
export interface HttpRequestHead {
  method: string;
  target: string;
  /** `1.0` or `1.1`. */
  version: string;
  headers: [name: string, value: string][];
}

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([^\s]+) HTTP\/(\d)\.(\d)$/;
/**
 * RFC 9110 field: a token name, a colon with no space before it, a value of visible
 * characters, spaces and tabs. The value is matched greedily, with no optional whitespace
 * around it, and trimmed afterwards: a lazy value between two whitespace runs backtracks
 * with cubic cost on a long run of blanks that ends in a bad byte (seconds of a blocked event
 * loop for a 4 KiB line).
 */
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):([^\0\r\n]*)$/;

/**
 * Parses the text of a request head up to and including its blank line (decoded as latin1,
 * so every byte maps to one character).
 *
 * @throws ProxyError `TRELLIS_ERR_PROXY_BAD_REQUEST` for a malformed line (naming it),
 *   `TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION` for anything but HTTP/1.0 and 1.1,
 *   `TRELLIS_ERR_PROXY_HEAD_TOO_LARGE` for more than {@link MAX_HTTP_HEADER_COUNT} fields.
 */
export function parseRequestHead(text: string): HttpRequestHead {
  const lines = text.split(/\r?\n/);
  // The head ends with an empty line, which the split turns into two empty strings.
  lines.splice(-2, 2);
  const requestLine = lines.shift() ?? '';
  const request = REQUEST_LINE.exec(requestLine);
  if (request === null) throw new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', `malformed HTTP request line ${printable(requestLine)}`);
  const [, method = '', target = '', major = '', minor = ''] = request;
  const version = `${major}.${minor}`;
  if (version !== '1.0' && version !== '1.1') {
    throw new ProxyError('TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION', `HTTP/${version} is not supported by this proxy: use HTTP/1.1`);
  }
  if (lines.length > MAX_HTTP_HEADER_COUNT) {
    throw new ProxyError('TRELLIS_ERR_PROXY_HEAD_TOO_LARGE', `HTTP request has ${lines.length} header fields; at most ${MAX_HTTP_HEADER_COUNT} are accepted`);
  }
  const headers: [string, string][] = [];
  for (const line of lines) {
    if (line.startsWith(' ') || line.startsWith('\t')) {
      // RFC 9112 5.2: obsolete line folding must be rejected by a proxy or replaced; rejecting is simpler and safe.
      throw new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', `folded HTTP header line ${printable(line)} is not accepted`);
    }
    const field = HEADER_LINE.exec(line);
    if (field === null) throw new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', `malformed HTTP header line ${printable(line)}`);
    headers.push([field[1] ?? '', trimBlanks(field[2] ?? '')]);
  }
  return { method, target, version, headers };
}

/** The value without leading and trailing spaces and tabs (not other whitespace, which the field rule excludes). */
function trimBlanks(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++;
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--;
  return value.slice(start, end);
}

/** A line quoted for an error message: control characters escaped, cut to a readable length. */
function printable(line: string): string {
  return JSON.stringify(line.length > 120 ? `${line.slice(0, 120)}…` : line);
}
