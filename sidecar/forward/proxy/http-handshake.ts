/**
 * The server side of an HTTP proxy request: `CONNECT host:port` (a tunnel) or an
 * absolute-form request (`GET http://api.mesh/path HTTP/1.1`), which is rewritten to origin
 * form for the app. Pure: bytes in, replies out.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ProxyError } from './errors.js';
import type { ProxyErrorCode } from './errors.js';
import type { HandshakeStep, ProxyHandshake, ProxyRequest, ProxyTarget } from './handshake.js';
import { parseRequestHead } from './http-request-head.js';
import type { HttpRequestHead } from './http-request-head.js';

/** Largest request head (request line and headers) the proxy holds while waiting for its end. */
export const MAX_HTTP_HEAD_BYTES = 8 * 1024;

const STATUS_BY_ERROR: Partial<Record<ProxyErrorCode, [number, string]>> = {
  TRELLIS_ERR_PROXY_NOT_MESH: [403, 'Forbidden'],
  TRELLIS_ERR_PROXY_TIMEOUT: [408, 'Request Timeout'],
  TRELLIS_ERR_PROXY_HEAD_TOO_LARGE: [431, 'Request Header Fields Too Large'],
  TRELLIS_ERR_PROXY_NO_ROUTE: [502, 'Bad Gateway'],
  TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION: [505, 'HTTP Version Not Supported'],
};

/**
 * Headers that concern only the hop to the proxy, dropped from a forwarded request. Upgrade
 * goes too: a tunnel (WebSocket and the like) takes CONNECT, as proxy-aware clients do.
 */
const HOP_BY_HOP_HEADERS = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'upgrade', 'host']);
/** Headers that frame the body: kept even when Connection names them, since the body passes through as sent. */
const BODY_FRAMING_HEADERS = new Set(['content-length', 'transfer-encoding']);

/** One client's HTTP proxy request head, collected until its blank line. */
export class HttpProxyHandshake implements ProxyHandshake {
  readonly protocol = 'http';
  readonly #head = Buffer.allocUnsafe(MAX_HTTP_HEAD_BYTES);
  #headBytes = 0;
  #done = false;
  /** Set by a completed CONNECT: only a tunnel gets a reply of the proxy's own before the app's bytes. */
  #tunnel = false;

  get bufferedBytes(): number {
    return this.#headBytes;
  }

  push(chunk: Buffer): HandshakeStep {
    if (this.#done) throw new Error('the HTTP proxy handshake is already complete');
    const before = this.#headBytes;
    const copied = chunk.copy(this.#head, before, 0, Math.min(chunk.length, MAX_HTTP_HEAD_BYTES - before));
    this.#headBytes += copied;
    // The blank line may straddle the previous push: look back over the bytes it could start in.
    const end = findHeadEnd(this.#head.subarray(0, this.#headBytes), Math.max(0, before - 3));
    if (end === undefined) {
      if (this.#headBytes >= MAX_HTTP_HEAD_BYTES) {
        throw new ProxyError('TRELLIS_ERR_PROXY_HEAD_TOO_LARGE', `HTTP request head is larger than ${MAX_HTTP_HEAD_BYTES} bytes`);
      }
      return {};
    }
    this.#done = true;
    const head = parseRequestHead(this.#head.toString('latin1', 0, end));
    const rest = Buffer.concat([this.#head.subarray(end, this.#headBytes), chunk.subarray(copied)]);
    this.#headBytes = 0;
    this.#tunnel = head.method === 'CONNECT';
    return { request: toProxyRequest(head, rest) };
  }

  successReply(): Buffer | undefined {
    return this.#tunnel ? Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1') : undefined;
  }

  failureReply(error: ProxyError): Buffer {
    const [status, reason] = STATUS_BY_ERROR[error.code] ?? [400, 'Bad Request'];
    const body = Buffer.from(`${error.message}\n`, 'utf8');
    const head =
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\nX-Trellis-Error: ${error.code}\r\n\r\n`;
    return Buffer.concat([Buffer.from(head, 'latin1'), body]);
  }
}

/** The offset just past the head's blank line (CRLF CRLF, or bare LF LF as RFC 9112 tolerates). */
function findHeadEnd(bytes: Buffer, from: number): number | undefined {
  for (let index = from; index < bytes.length; index += 1) {
    if (bytes[index] !== 0x0a) continue;
    if (bytes[index + 1] === 0x0a) return index + 2;
    if (bytes[index + 1] === 0x0d && bytes[index + 2] === 0x0a) return index + 3;
  }
  return undefined;
}

function toProxyRequest(head: HttpRequestHead, rest: Buffer): ProxyRequest {
  if (head.method === 'CONNECT') {
    // RFC 9110 9.3.6: the target of CONNECT is only host and port, and the port is required.
    const authority = parseAuthority(head.target);
    if (authority.port === undefined) throw badRequest(`CONNECT target "${head.target}" has no port`);
    return { target: targetOf(authority.host, authority.port), initialBytes: rest };
  }
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)(.*)$/.exec(head.target);
  if (match === null) {
    throw badRequest(`"${head.method} ${head.target}" is not a proxy request: send an absolute URL (GET http://<service>.mesh/path) or CONNECT`);
  }
  const [, scheme = '', authorityText = '', pathAndQuery = ''] = match;
  if (scheme.toLowerCase() !== 'http') throw badRequest(`only http:// URLs are proxied as requests; for ${scheme}:// use CONNECT`);
  const authority = parseAuthority(authorityText);
  const path = pathAndQuery.startsWith('/') ? pathAndQuery : `/${pathAndQuery}`;
  const rewritten = originFormHead(head, path, authorityText);
  return { target: targetOf(authority.host, authority.port ?? 80), initialBytes: Buffer.concat([rewritten, rest]) };
}

/**
 * The request as the app should see it: origin-form target, `Host` set to the URL's
 * authority (RFC 9112 3.2.2), hop-by-hop headers dropped, and `Connection: close`. One request
 * per proxied connection: whatever the client sends later goes to the same app, so a
 * keep-alive request for another service must not follow on it. Clients see the close and
 * open a new connection (to the proxy on loopback; the mesh link underneath stays up).
 */
export function originFormHead(head: HttpRequestHead, path: string, authority: string): Buffer {
  const dropped = new Set(HOP_BY_HOP_HEADERS);
  for (const [name, value] of head.headers) {
    const lower = name.toLowerCase();
    if (lower !== 'connection' && lower !== 'proxy-connection') continue;
    for (const option of value.split(',')) {
      const token = option.trim().toLowerCase();
      if (token !== '' && !BODY_FRAMING_HEADERS.has(token)) dropped.add(token);
    }
  }
  const lines = [`${head.method} ${path} HTTP/${head.version}`, `Host: ${authority}`];
  for (const [name, value] of head.headers) {
    if (!dropped.has(name.toLowerCase())) lines.push(`${name}: ${value}`);
  }
  lines.push('Connection: close', '', '');
  return Buffer.from(lines.join('\r\n'), 'latin1');
}

/** `host[:port]` or `[v6]:port`; user info is refused, being deprecated for http (RFC 9110 4.2.4). */
function parseAuthority(text: string): { host: string; port: number | undefined } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:@[\]]+))(?::(\d{0,5}))?$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const portText = match?.[3];
  const port = portText === undefined || portText === '' ? undefined : Number(portText);
  if (match === null || host === undefined || (port !== undefined && port > 65535)) {
    throw badRequest(`"${text}" is not a valid host[:port]`);
  }
  return { host, port };
}

function targetOf(host: string, port: number): ProxyTarget {
  return { host, port, addressType: isIPv4(host) ? 'ipv4' : isIPv6(host) ? 'ipv6' : 'domain' };
}

function badRequest(message: string): ProxyError {
  return new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', message);
}
