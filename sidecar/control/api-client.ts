import { X509Certificate } from 'node:crypto';
import https from 'node:https';
import type { TrellisErrorCode } from '../../proto/error-codes.js';
import { isTrellisErrorCode } from '../../proto/error-codes.js';
import { TrellisError } from '../../proto/errors.js';
import { controlPlaneSpiffeId, uriSansOf } from '../../proto/spiffe.js';
import type { RootLineageEntry } from '../identity/root-lineage.js';
import { rootsFromPin } from '../identity/root-lineage.js';

/** Largest response body accepted from the control plane. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** @default 10_000 */
const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** An error answer of the control plane's API, with its stable code. */
export class ControlPlaneApiError extends TrellisError {
  override readonly name = 'ControlPlaneApiError';
  constructor(
    code: TrellisErrorCode,
    message: string,
    readonly status: number,
  ) {
    super(code, message);
  }
}

/** How to reach and authenticate the control plane. */
export interface ControlPlaneEndpoint {
  /** `https://host:port` */
  url: string;
  trustDomain: string;
  /** CA certificates to trust (PEM); empty only for the first, fingerprint-checked contact. */
  caPems: string[];
  /** Client certificate for mutual TLS, when the sidecar has one. */
  clientKeyPem?: string;
  clientCertPem?: string;
  timeoutMs?: number;
}

/** The lowercase hex SHA-256 fingerprint of a certificate's DER. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();
}

/**
 * First contact: fetches the trust bundle over a TLS connection that is not yet verified and
 * keeps only the CA whose fingerprint the token carries. Every later request is verified
 * against that CA, so an impostor control plane is refused without trust on first use.
 */
export async function fetchPinnedCa(url: string, caFingerprint: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string> {
  return (await fetchPinnedRoots(url, caFingerprint, timeoutMs))[0] as string;
}

/**
 * As {@link fetchPinnedCa}, but every root the pinned one vouches for: itself while the bundle
 * holds it, and its successors by cross-signature, so a token made before a CA rotation still
 * authenticates the control plane during and after it (PROTOCOL.md, "CA rotation").
 */
export async function fetchPinnedRoots(url: string, caFingerprint: string, timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS): Promise<string[]> {
  const bundle = (await request({ url, trustDomain: '', caPems: [], timeoutMs }, 'GET', '/v1/trust-bundle', undefined, {
    unverified: true,
  })) as { caPems?: unknown; lineage?: unknown };
  const pems = Array.isArray(bundle.caPems) ? bundle.caPems.filter((pem): pem is string => typeof pem === 'string') : [];
  const lineage = Array.isArray(bundle.lineage) ? bundle.lineage.filter(isLineageEntry) : [];
  const roots = rootsFromPin(caFingerprint, pems, lineage);
  if (roots.length > 0) return roots;
  throw new TrellisError(
    'TRELLIS_ERR_CA_MISMATCH',
    `the control plane at ${url} does not present the CA named by the token (fingerprint ${caFingerprint.slice(0, 16)}…)`,
  );
}

/**
 * Joins through the first control-plane replica that answers: authenticates each by the CA
 * fingerprint a token carries (`fetchPinnedCa`), then POSTs `body` to `path`. A replica that
 * cannot be reached is skipped; any answer of the control plane (a refused token above all)
 * is final.
 */
export async function postToFirstReplica(urls: readonly string[], token: { caFingerprint: string; trustDomain: string }, path: string, body: unknown): Promise<unknown> {
  let lastError: unknown;
  for (const url of urls) {
    try {
      const caPems = await fetchPinnedRoots(url, token.caFingerprint);
      return await request({ url, trustDomain: token.trustDomain, caPems }, 'POST', path, body);
    } catch (error) {
      if (error instanceof TrellisError && !error.code.endsWith('_UNREACHABLE')) throw error;
      lastError = error;
    }
  }
  throw lastError instanceof Error ? lastError : new TrellisError('TRELLIS_ERR_CONTROL_PLANE_UNREACHABLE', 'no control plane URL given');
}

/**
 * One JSON request to the control plane's API over verified TLS. Errors answered by the
 * API come back as ControlPlaneApiError with the server's code and message; a control plane
 * that cannot be reached gives TRELLIS_ERR_CONTROL_PLANE_UNREACHABLE.
 */
export function request(
  endpoint: ControlPlaneEndpoint,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  options: { bearerToken?: string; unverified?: boolean } = {},
): Promise<unknown> {
  const target = new URL(path, endpoint.url);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const expectedId = controlPlaneSpiffeId(endpoint.trustDomain);
  return new Promise((resolve, reject) => {
    const req = https.request(
      target,
      {
        method,
        ca: endpoint.caPems.length > 0 ? endpoint.caPems : undefined,
        key: endpoint.clientKeyPem,
        cert: endpoint.clientCertPem,
        rejectUnauthorized: options.unverified !== true,
        checkServerIdentity: (_host, certificate) =>
          options.unverified === true || uriSansOf(certificate.subjectaltname).includes(expectedId)
            ? undefined
            : new TrellisError('TRELLIS_ERR_CONTROL_PLANE_IDENTITY', `${endpoint.url} is not ${expectedId}`),
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': payload.length }),
          ...(options.bearerToken === undefined ? {} : { authorization: `Bearer ${options.bearerToken}` }),
        },
        timeout: endpoint.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) req.destroy(new TrellisError('TRELLIS_ERR_RESPONSE_TOO_LARGE', `response from ${endpoint.url} is too large`));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            reject(new TrellisError('TRELLIS_ERR_BAD_RESPONSE', `${method} ${path}: the control plane answered ${res.statusCode} with a body that is not JSON`));
            return;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) {
            resolve(parsed);
            return;
          }
          const error = (parsed as { error?: { code?: unknown; message?: unknown } }).error;
          const message = typeof error?.message === 'string' ? error.message : `${method} ${path} failed with HTTP ${status}`;
          // A code this build does not know (a newer control plane) is kept in the message.
          const known = typeof error?.code === 'string' && isTrellisErrorCode(error.code);
          const code = known ? (error.code as TrellisErrorCode) : 'TRELLIS_ERR_CONTROL_PLANE';
          reject(new ControlPlaneApiError(code, known || typeof error?.code !== 'string' ? message : `${message} (${error.code})`, status));
        });
      },
    );
    req.on('timeout', () => req.destroy(new TrellisError('TRELLIS_ERR_CONTROL_PLANE_UNREACHABLE', `control plane ${endpoint.url} did not answer in time`)));
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error instanceof TrellisError) reject(error);
      else if (error.code?.startsWith('ERR_TLS') || error.code?.includes('CERT') || error.code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE') {
        reject(new TrellisError('TRELLIS_ERR_CONTROL_PLANE_IDENTITY', `cannot verify the control plane at ${endpoint.url}: ${error.message}`));
      } else {
        reject(new TrellisError('TRELLIS_ERR_CONTROL_PLANE_UNREACHABLE', `cannot reach the control plane at ${endpoint.url}: ${error.code ?? error.message}`));
      }
    });
    req.end(payload);
  });
}

function isLineageEntry(value: unknown): value is RootLineageEntry {
  const entry = value as Partial<RootLineageEntry> | null;
  return typeof entry?.rootPem === 'string' && typeof entry.crossPem === 'string';
}
