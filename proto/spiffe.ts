import { SERVICE_NAME_PATTERN } from './names.js';

/**
 * SPIFFE identities of the mesh: `spiffe://<trust-domain>/svc/<service>` for a service's
 * sidecars and `spiffe://<trust-domain>/control-plane` for the control plane.
 */


/** The SPIFFE id of the sidecars of `service`. */
export function serviceSpiffeId(trustDomain: string, service: string): string {
  return `spiffe://${trustDomain}/svc/${service}`;
}

/** The SPIFFE id of the control plane. */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/control-plane`;
}

/** The service named by a sidecar SPIFFE id of `trustDomain`, or undefined for any other id. */
export function serviceOfSpiffeId(trustDomain: string, spiffeId: string): string | undefined {
  const prefix = `spiffe://${trustDomain}/svc/`;
  if (!spiffeId.startsWith(prefix)) return undefined;
  const service = spiffeId.slice(prefix.length);
  return SERVICE_NAME_PATTERN.test(service) ? service : undefined;
}

/**
 * The URI SANs in a certificate's `subjectaltname` string as Node's TLS layer renders it
 * (`URI:spiffe://…, DNS:…`). Values with special characters are JSON-quoted there; a SPIFFE
 * id never needs quoting, so a quoted URI is not accepted as one.
 */
export function uriSansOf(subjectAltName: string | undefined): string[] {
  if (subjectAltName === undefined) return [];
  const uris: string[] = [];
  for (const part of subjectAltName.split(', ')) {
    if (part.startsWith('URI:') && !part.startsWith('URI:"')) uris.push(part.slice(4));
  }
  return uris;
}
