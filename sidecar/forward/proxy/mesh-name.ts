import { SERVICE_NAME_PATTERN } from '../../../proto/control.js';
import { ProxyError } from './errors.js';

/** The pseudo top-level domain under which the proxy reaches services: `<service>.mesh`. */
export const MESH_DOMAIN_SUFFIX = '.mesh';

/** Longest destination name quoted back in an error, so that a hostile name cannot flood logs. */
const MAX_QUOTED_NAME_CHARS = 255;

/**
 * The service a proxy destination names, from `<service>.mesh` (any case, one trailing dot
 * allowed as in a fully qualified name). Anything else — another domain, an IP address, a
 * nested name like `a.b.mesh` — is refused here, before any socket is opened.
 *
 * @throws ProxyError `TRELLIS_ERR_PROXY_NOT_MESH` naming the destination.
 */
export function meshServiceOf(host: string): string {
  const name = host.toLowerCase().replace(/\.$/, '');
  if (name.endsWith(MESH_DOMAIN_SUFFIX)) {
    const service = name.slice(0, -MESH_DOMAIN_SUFFIX.length);
    if (SERVICE_NAME_PATTERN.test(service)) return service;
  }
  throw new ProxyError(
    'TRELLIS_ERR_PROXY_NOT_MESH',
    `${quoteName(host)} is not a mesh name: this proxy reaches only <service>.mesh (service: lowercase letters, digits and inner '-')`,
  );
}

/** A destination as it may appear in a message: JSON-quoted and cut to a bounded length. */
export function quoteName(name: string): string {
  return JSON.stringify(name.length > MAX_QUOTED_NAME_CHARS ? `${name.slice(0, MAX_QUOTED_NAME_CHARS)}…` : name);
}
