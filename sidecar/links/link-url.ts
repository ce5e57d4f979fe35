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
  if (scheme === undefined) return { scheme: 'tls', path: undefined, ...parseHostPort(text, what) };
  const rest = text.slice(scheme.length + 3);
  if (scheme === 'tls') return { scheme, path: undefined, ...parseHostPort(rest, what) };
  if (scheme === 'wss') {
    const slash = rest.indexOf('/');
    const hostPort = slash === -1 ? rest : rest.slice(0, slash);
    const path = slash === -1 ? DEFAULT_WS_LINK_PATH : rest.slice(slash);
    if (!/^\/[A-Za-z0-9._~/-]{0,200}$/.test(path)) {
      throw new ValidationError(`${what}: "${path}" is not a valid WebSocket path`, 'TRELLIS_ERR_BAD_ADDRESS');
    }
    return { scheme, path, ...parseHostPort(hostPort, what) };
  }
  throw new ValidationError(`${what} must be HOST:PORT, tls://HOST:PORT or wss://HOST:PORT[/PATH], got "${text}"`, 'TRELLIS_ERR_BAD_ADDRESS');
}

/** Formats a link URL back to text (always with its scheme). */
export function formatLinkUrl(url: LinkUrl): string {
  const hostPort = formatHostPort(url.host, url.port);
  return url.scheme === 'tls' ? `tls://${hostPort}` : `wss://${hostPort}${url.path ?? DEFAULT_WS_LINK_PATH}`;
}
