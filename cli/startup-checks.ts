/**
 * What can fail at start, checked before a sidecar or gateway joins the mesh: so that a wrong
 * flag costs no certificate, and its error names the flag.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve as resolvePath } from 'node:path';
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import { TrellisError } from '../proto/errors.js';
import type { HostPort } from '../sidecar/net/address.js';
import { formatHostPort } from '../sidecar/net/address.js';
import { UsageError } from './args.js';

/** A flag's value cannot be used on this machine (port taken, not a local address, no permission…). */
export class FlagValueError extends TrellisError {
  override readonly name = 'FlagValueError';
  constructor(
    readonly flag: string,
    code: 'TRELLIS_ERR_ADDRESS_UNAVAILABLE' | 'TRELLIS_ERR_DATA_DIR',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, `${flag} ${message}`, options);
  }
}

/** Why a system call failed, in words, for the common cases; the errno code follows in brackets. */
const ERRNO_WORDS: Record<string, string> = {
  EADDRINUSE: 'is already in use',
  EADDRNOTAVAIL: 'is not an address of this machine',
  EACCES: 'is not permitted (ports below 1024 need privileges)',
  ENOTFOUND: 'names a host that does not resolve',
  ENOTDIR: 'has a part that is not a directory',
  EEXIST: 'exists and is not a directory',
  EROFS: 'is on a read-only file system',
  ENOSPC: 'is on a full disk',
};

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code === undefined ? `failed: ${(error as Error).message}` : `${ERRNO_WORDS[code] ?? 'cannot be used'} (${code})`;
}

/** An address a process will listen on, and the flag it came from. */
export interface PlannedListener extends HostPort {
  flag: string;
}

/**
 * Binds every address in turn, all held open until the last, then releases them: a port taken
 * by another process, or given to two flags, fails here naming its flag. Port 0 is bound too
 * (which checks that the host is local). A moment passes before the real listeners bind; a
 * port taken in between still fails then, with Node's own error.
 */
export async function checkListenAddresses(listeners: readonly PlannedListener[]): Promise<void> {
  const bound: net.Server[] = [];
  try {
    for (const listener of listeners) {
      const server = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen({ host: listener.host, port: listener.port, exclusive: true }, () => resolve());
        });
      } catch (error) {
        throw new FlagValueError(listener.flag, 'TRELLIS_ERR_ADDRESS_UNAVAILABLE', `${formatHostPort(listener.host, listener.port)} ${describe(error)}`, { cause: error });
      }
      bound.push(server);
    }
  } finally {
    await Promise.all(bound.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** Checks that the data directory is, or can be made, a writable directory (the sidecar makes it later). */
export function checkDataDir(dir: string, flag = '--data-dir'): void {
  try {
    // Checked without creating anything: a start that fails later leaves nothing on disk.
    let probe = resolvePath(dir);
    for (;;) {
      let info;
      try {
        info = statSync(probe);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || dirname(probe) === probe) throw error;
        probe = dirname(probe);
        continue;
      }
      if (!info.isDirectory()) throw Object.assign(new Error(`${probe} is not a directory`), { code: 'ENOTDIR' });
      accessSync(probe, constants.W_OK | constants.X_OK);
      return;
    }
  } catch (error) {
    throw new FlagValueError(flag, 'TRELLIS_ERR_DATA_DIR', `${dir} ${describe(error)}`, { cause: error });
  }
}

/** Loopback hosts: the admin endpoint serves /status and /metrics without authentication. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Refuses an admin address other hosts could reach, unless the operator said so. */
export function checkAdminAddress(admin: HostPort | undefined, allowRemote: boolean, flag = '--admin'): void {
  if (admin === undefined || allowRemote || isLoopbackHost(admin.host)) return;
  throw new UsageError(
    `${flag} ${formatHostPort(admin.host, admin.port)} is not a loopback address, and the admin endpoint (/status, /metrics) has no authentication: ` +
      `use 127.0.0.1, or add --admin-allow-remote to expose it on purpose`,
  );
}

/** `0.0.0.0` and `::`: every address of the machine, which no other host can dial. */
export function isWildcardHost(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '[::]';
}

/**
 * The address other sidecars dial must be one they can reach: a listener on every address
 * (`0.0.0.0`) needs `--advertise` to say which one, and the advertised host cannot be a wildcard.
 */
export function checkAdvertisable(listen: HostPort, advertise: HostPort | undefined): void {
  if (advertise !== undefined) {
    if (isWildcardHost(advertise.host)) throw new UsageError(`--advertise ${advertise.host} is not an address other hosts can dial`);
    return;
  }
  if (!isWildcardHost(listen.host)) return;
  const candidates = localAddresses().map((address) => formatHostPort(address, listen.port === 0 ? 7501 : listen.port));
  throw new UsageError(
    `--listen ${formatHostPort(listen.host, listen.port)} binds every address, and other sidecars need one to dial: add --advertise HOST:PORT` +
      (candidates.length === 0 ? '' : ` (this machine's: ${candidates.join(', ')})`),
  );
}

/** This machine's non-loopback addresses, IPv4 first. */
function localAddresses(): string[] {
  const addresses = Object.values(networkInterfaces()).flatMap((infos) => infos ?? []).filter((info) => !info.internal && !info.address.startsWith('fe80:'));
  return [...addresses.filter((info) => info.family === 'IPv4'), ...addresses.filter((info) => info.family !== 'IPv4')].map((info) => info.address).slice(0, 4);
}
