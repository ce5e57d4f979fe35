import net from 'node:net';
import { TrellisError, ValidationError } from '../../proto/errors.js';
import type { HostPort } from '../net/address.js';
import { formatHostPort, parseHostPort } from '../net/address.js';
import type { ConnectTarget, Connector } from './connector.js';
import { directConnector } from './connector.js';

/** A proxy's response head (status line and headers) may take at most this many bytes. */
export const MAX_PROXY_RESPONSE_HEAD_BYTES = 8 * 1024;

const HEAD_END = Buffer.from('\r\n\r\n');

/** An HTTP proxy to tunnel through: `http://[user:pass@]HOST:PORT`, parsed. */
export interface HttpProxy extends HostPort {
  /** `user:pass`, percent-decoded, sent as Basic Proxy-Authorization; undefined for none. */
  credentials: string | undefined;
}

/**
 * Parses `http://HOST:PORT` or `http://user:pass@HOST:PORT` (a trailing `/` is allowed).
 * Throws ValidationError `TRELLIS_ERR_BAD_ADDRESS` naming `what` (the flag or variable).
 */
export function parseHttpProxyUrl(text: string, what: string): HttpProxy {
  const match = /^http:\/\/(?:([^@/]*)@)?([^@/]+)\/?$/.exec(text);
  const bad = (): ValidationError => new ValidationError(`${what} must be http://HOST:PORT or http://user:pass@HOST:PORT, got "${text}"`, 'TRELLIS_ERR_BAD_ADDRESS');
  if (match?.[2] === undefined) throw bad();
  let hostPort: HostPort;
  try {
    hostPort = parseHostPort(match[2], what);
  } catch {
    throw bad();
  }
  if (hostPort.port === 0) throw bad();
  let credentials: string | undefined;
  try {
    credentials = match[1] === undefined ? undefined : match[1].split(':').map(decodeURIComponent).join(':');
  } catch {
    throw bad();
  }
  return { ...hostPort, credentials };
}

/**
 * Reaches peers through an HTTP proxy with `CONNECT host:port` (corporate egress), so that
 * the link's TLS, or a WebSocket link's HTTPS, runs end to end through the tunnel.
 */
export class HttpConnectConnector implements Connector {
  readonly #proxy: HttpProxy;

  constructor(proxy: HttpProxy | string) {
    this.#proxy = typeof proxy === 'string' ? parseHttpProxyUrl(proxy, 'egress proxy') : proxy;
  }

  /** The proxy, for logs (without its credentials). */
  get proxyAddress(): string {
    return formatHostPort(this.#proxy.host, this.#proxy.port);
  }

  /**
   * A socket tunnelled to `target`, positioned right after the proxy's response head.
   * @throws TrellisError `TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE` (no TCP to the proxy),
   * `TRELLIS_ERR_EGRESS_PROXY_REFUSED` (a non-2xx answer), `TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE`
   * (not HTTP, too long, or closed before the head ended), `TRELLIS_ERR_DIAL_TIMEOUT` (the whole
   * exchange took longer than `timeoutMs`).
   */
  connect({ host, port, timeoutMs }: ConnectTarget): Promise<net.Socket> {
    const proxy = this.#proxy;
    const authority = formatHostPort(host, port);
    const socket = net.connect({ host: proxy.host, port: proxy.port, noDelay: true });
    return new Promise((resolve, reject) => {
      let connected = false;
      let head = Buffer.alloc(0);
      const finish = (error: TrellisError | undefined): void => {
        clearTimeout(timer);
        socket.off('readable', onReadable).off('error', onError).off('close', onClose);
        if (error === undefined) {
          resolve(socket);
        } else {
          socket.destroy();
          reject(error);
        }
      };
      const timer = setTimeout(
        () => finish(new TrellisError('TRELLIS_ERR_DIAL_TIMEOUT', `CONNECT ${authority} through the egress proxy ${this.proxyAddress} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onError = (error: Error): void => {
        const code = connected ? 'TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE' : 'TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE';
        finish(new TrellisError(code, `egress proxy ${this.proxyAddress}: ${error.message}`, { cause: error }));
      };
      const onClose = (): void =>
        finish(new TrellisError('TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE', `egress proxy ${this.proxyAddress} closed the connection before answering CONNECT ${authority}`));
      // Read with 'readable' and read(), not 'data': once the listener goes, the socket is back in
      // its initial mode, so that the caller may read it either way, from the first byte after the head.
      const onReadable = (): void => {
        let chunk: Buffer | null;
        while ((chunk = socket.read() as Buffer | null) !== null) {
          const scanFrom = Math.max(0, head.length - HEAD_END.length + 1);
          head = Buffer.concat([head, chunk]);
          const end = head.indexOf(HEAD_END, scanFrom);
          // A head that passes the limit is refused, however it is split into chunks.
          if (end === -1 ? head.length > MAX_PROXY_RESPONSE_HEAD_BYTES : end + HEAD_END.length > MAX_PROXY_RESPONSE_HEAD_BYTES) {
            finish(new TrellisError('TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE', `egress proxy ${this.proxyAddress} sent a response head above ${MAX_PROXY_RESPONSE_HEAD_BYTES} bytes`));
            return;
          }
          if (end !== -1) {
            socket.off('readable', onReadable);
            const rest = head.subarray(end + HEAD_END.length);
            if (rest.length > 0) socket.unshift(rest);
            finish(statusErrorOf(head.subarray(0, end).toString('latin1'), authority, this.proxyAddress));
            return;
          }
        }
      };
      socket.once('connect', () => {
        connected = true;
        socket.write(connectRequestOf(authority, proxy.credentials));
      });
      socket.on('readable', onReadable).on('error', onError).on('close', onClose);
    });
  }
}

function connectRequestOf(authority: string, credentials: string | undefined): string {
  const auth = credentials === undefined ? '' : `Proxy-Authorization: Basic ${Buffer.from(credentials, 'utf8').toString('base64')}\r\n`;
  return `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${auth}\r\n`;
}

/** undefined for a 2xx status line, else the error to fail with. */
function statusErrorOf(head: string, authority: string, proxyAddress: string): TrellisError | undefined {
  const status = /^HTTP\/1\.[01] (\d{3})(?: |\r|$)/.exec(head)?.[1];
  if (status === undefined) {
    return new TrellisError('TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE', `egress proxy ${proxyAddress} answered CONNECT with something other than HTTP/1.x`);
  }
  if (status.startsWith('2')) return undefined;
  return new TrellisError('TRELLIS_ERR_EGRESS_PROXY_REFUSED', `egress proxy ${proxyAddress} refused CONNECT ${authority} with HTTP ${status}`);
}

/**
 * The connector the links use: through the proxy of `--egress-proxy` (`flagValue`), else of
 * `HTTPS_PROXY`/`https_proxy`, else direct. Hosts listed in `NO_PROXY`/`no_proxy` (exact names,
 * or suffixes such as `.corp.example` or `corp.example`; `*` for all) are reached directly
 * either way, as curl and most tools do.
 * @throws ValidationError `TRELLIS_ERR_BAD_ADDRESS` naming the flag or variable when its value
 * is not `http://HOST:PORT` (optionally with `user:pass@`).
 */
export function egressConnectorFromEnv(flagValue: string | undefined, env: NodeJS.ProcessEnv): Connector {
  const fromEnv = nonEmpty(env.HTTPS_PROXY) ?? nonEmpty(env.https_proxy);
  const text = nonEmpty(flagValue) ?? fromEnv;
  if (text === undefined) return directConnector;
  const proxy = new HttpConnectConnector(parseHttpProxyUrl(text, nonEmpty(flagValue) !== undefined ? '--egress-proxy' : 'HTTPS_PROXY'));
  const noProxy = nonEmpty(env.NO_PROXY) ?? nonEmpty(env.no_proxy);
  if (noProxy === undefined) return proxy;
  return { connect: (target) => (noProxyMatches(target.host, noProxy) ? directConnector : proxy).connect(target) };
}

/**
 * Whether `host` is listed in a `NO_PROXY` value: comma-separated names, each matching itself
 * and its subdomains (a leading `.` changes nothing), IPv6 addresses with or without brackets,
 * and `*` for every host.
 */
export function noProxyMatches(host: string, noProxy: string): boolean {
  const name = host.toLowerCase();
  return noProxy.split(',').some((raw) => {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/^\./, '');
    if (entry === '') return false;
    return entry === '*' || name === entry || name.endsWith(`.${entry}`);
  });
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
