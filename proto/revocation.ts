/**
 * The one reading of revocation entries (PROTOCOL.md, "Revocation"), shared by the control
 * plane (channel, renewals, joins) and by sidecars and gateways (links, tunnels). Pure.
 */
import type { RevokedServiceValue, RevokedSidecarValue } from './control.js';

/** Where the revocation entries in force are looked up. */
export interface RevocationLookup {
  sidecar(sidecarId: string): RevokedSidecarValue | undefined;
  service(service: string): RevokedServiceValue | undefined;
}

/** What a certificate shows: its common name (sidecar or gateway id), its service, its notBefore. */
export interface CertificateHolder {
  id: string | undefined;
  /** Undefined for a gateway. */
  service: string | undefined;
  /**
   * The certificate's notBefore in ms since the epoch. Unknown for a resumed TLS session seen
   * from the dialling end: then only the id is checked (a ticket from before the revocation
   * is forgotten when the revocation arrives, so a resumed session was proved after it).
   */
  notBeforeMs: number | undefined;
}

/** Why `holder`'s certificate is revoked, or undefined when it is not. */
export function revocationOf(lookup: RevocationLookup, holder: CertificateHolder): string | undefined {
  if (holder.id !== undefined && lookup.sidecar(holder.id) !== undefined) return `${holder.id} is revoked`;
  if (holder.service === undefined || holder.notBeforeMs === undefined) return undefined;
  const revoked = lookup.service(holder.service);
  if (revoked === undefined || holder.notBeforeMs > revoked.notBeforeCutoff) return undefined;
  return `certificates of service ${holder.service} issued before ${new Date(revoked.revokedAt).toISOString()} are revoked`;
}
