import { readFileSync } from 'node:fs';
import { parseAdminToken } from '../proto/tokens.js';
import type { ControlPlaneEndpoint } from '../sidecar/control/api-client.js';
import { fetchPinnedRoots, request } from '../sidecar/control/api-client.js';
import { UsageError } from './args.js';
import { ProgressLine } from './progress.js';

/** An authenticated client of the control plane's admin API. */
export interface AdminClient {
  call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<unknown>;
}

/**
 * Reads the admin token (from `--admin-token-file`, else `TRELLIS_ADMIN_TOKEN`) and verifies the
 * control plane against the CA fingerprint the token carries before sending it anything. While
 * it waits for the control plane, `progress` says so on a terminal's stderr.
 */
export async function connectAdmin(url: string, tokenFile: string | undefined, progress: ProgressLine = new ProgressLine(process.stderr)): Promise<AdminClient> {
  let raw: string;
  if (tokenFile !== undefined) {
    try {
      raw = readFileSync(tokenFile, 'utf8');
    } catch (error) {
      throw new UsageError(`cannot read --admin-token-file ${tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else if (process.env['TRELLIS_ADMIN_TOKEN'] !== undefined) {
    raw = process.env['TRELLIS_ADMIN_TOKEN'];
  } else {
    throw new UsageError('missing --admin-token-file (or the TRELLIS_ADMIN_TOKEN environment variable)');
  }
  const token = parseAdminToken(raw);
  const host = new URL(url).host;
  const caPems = await progress.during(`connecting to the control plane at ${host}…`, () => fetchPinnedRoots(url, token.caFingerprint));
  const endpoint: ControlPlaneEndpoint = { url, trustDomain: token.trustDomain, caPems };
  const bearerToken = raw.trim();
  return { call: (method, path, body) => progress.during(`asking the control plane at ${host}…`, () => request(endpoint, method, path, body, { bearerToken })) };
}
