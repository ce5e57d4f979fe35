import { isIPv6 } from 'node:net';
import { ValidationError } from '../../proto/errors.js';
import type { HostPort } from '../net/address.js';
import { formatHostPort, parseHostPort } from '../net/address.js';

/** The schemes a link can run over. */
export type LinkScheme = 'tls' | 'wss';

/** A parsed link address. */
export interface LinkUrl extends HostPort {
  scheme: LinkScheme;
  /** The HTTP path of a WebSocket link; `undefined` for TLS. */
  path: string | undefined;
}

/** Where a WebSocket link listener answers when its URL names no path. */
export const DEFAULT_WS_LINK_PATH = '/trellis/v2/link';

/**
 * Parses `HOST:PORT` (TLS, as version 1 advertised it), `tls://HOST:PORT` or
 * `wss://HOST:PORT[/PATH]`. Throws ValidationError `TRELLIS_ERR_BAD_ADDRESS` naming `what`.
 */
export function parseLinkUrl(text: string, what = 'link address'): LinkUrl {
  const scheme = /^([a-z]+):\/\//.exec(text)?.[1];
  if (scheme === undefined) return { scheme: 'tls', path: undefined, ...parseLinkHost(text, what) };
  const rest = text.slice(scheme.length + 3);
  if (scheme === 'tls') return { scheme, path: undefined, ...parseLinkHost(rest, what) };
  if (scheme === 'wss') {
    const slash = rest.indexOf('/');
    const hostPort = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? DEFAULT_WS_LINK_PATH : rest.slice(slash);
    if (!/^\/[A-Za-z0-9._~/-]{0,200}$/.test(path)) {
      throw new ValidationError(`${what}: "${path}" is not a valid WebSocket path`, 'TRELLIS_ERR_BAD_ADDRESS');
    }
    return { scheme, path, ...parseLinkHost(hostPort, what) };
  }
  throw new ValidationError(`${what} must be HOST:PORT, tls://HOST:PORT or wss://HOST:PORT[/PATH], got "${text}"`, 'TRELLIS_ERR_BAD_ADDRESS');
}

/** `host:port` whose host is a DNS name or an IP address, as the control plane's link URL schema requires. */
function parseLinkHost(text: string, what: string): HostPort {
  const parsed = parseHostPort(text, what);
  if (!isIPv6(parsed.host) && !/^[A-Za-z0-9.-]+$/.test(parsed.host)) {
    throw new ValidationError(`${what}: "${parsed.host}" is not a host name or IP address`, 'TRELLIS_ERR_BAD_ADDRESS');
  }
  return parsed;
}

/** Formats a link URL back to text (always with its scheme). */
export function formatLinkUrl(url: LinkUrl): string {
  const hostPort = formatHostPort(url.host, url.port);
  return url.scheme === 'tls' ? `tls://${hostPort}` : `wss://${hostPort}${url.path ?? DEFAULT_WS_LINK_PATH}`;
}
