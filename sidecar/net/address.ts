import { isIPv6 } from 'node:net';
import { ValidationError } from '../../proto/errors.js';

/** A parsed `host:port` (IPv6 hosts in brackets: `[::1]:7400`). */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port`, checking the port is 0..65535. Throws ValidationError naming `what`
 * (e.g. the flag it came from) so that the user sees which value is wrong.
 */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (match === null || host === undefined || !Number.isInteger(port) || port > 65535) {
    throw new ValidationError(`${what} must be HOST:PORT with a port 0..65535, got "${text}"`, 'TRELLIS_ERR_BAD_ADDRESS');
  }
  if (match[1] !== undefined && !isIPv6(host)) {
    throw new ValidationError(`${what}: "${host}" in brackets is not an IPv6 address`, 'TRELLIS_ERR_BAD_ADDRESS');
  }
  return { host, port };
}

/** Formats a host and port back to `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}
