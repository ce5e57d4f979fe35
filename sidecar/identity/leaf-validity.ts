import { X509Certificate } from 'node:crypto';

/** Why a leaf certificate cannot be used now; absent when it can. */
export interface LeafRefusal {
  code: 'TRELLIS_ERR_CERT_NOT_YET_VALID' | 'TRELLIS_ERR_CERT_EXPIRED' | 'TRELLIS_ERR_CERT_UNREADABLE';
  message: string;
}

/**
 * Checks a renewed leaf against this host's clock before it replaces the one in use. A control
 * plane whose clock jumped ahead issues leaves that start in the future: every peer would refuse
 * handshakes made with one, so the sidecar keeps the certificate it has (still valid) and retries.
 */
export function leafRefusalAt(certPem: string, nowMs: number): LeafRefusal | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    return { code: 'TRELLIS_ERR_CERT_UNREADABLE', message: `the certificate cannot be read: ${(error as Error).message}` };
  }
  const notBefore = Date.parse(cert.validFrom);
  const notAfter = Date.parse(cert.validTo);
  if (notBefore > nowMs) return { code: 'TRELLIS_ERR_CERT_NOT_YET_VALID', message: `valid only from ${new Date(notBefore).toISOString()}, ${Math.round((notBefore - nowMs) / 1000)} s from now by this host's clock` };
  if (notAfter <= nowMs) return { code: 'TRELLIS_ERR_CERT_EXPIRED', message: `expired at ${new Date(notAfter).toISOString()} by this host's clock` };
  return undefined;
}
