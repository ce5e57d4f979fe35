import { SERVICE_NAME_PATTERN } from './names.js';

/**
 * SPIFFE identities of the mesh: `spiffe://<trust-domain>/svc/<service>` for a service's
 * sidecars, `spiffe://<trust-domain>/gw/<zone>/<name>` for gateways and
 * `spiffe://<trust-domain>/control-plane` for the control plane.
 */

/** Who is at the other end of a link, read from its verified certificate. */
export type PeerIdentity =
  | { kind: 'service'; service: string }
  | { kind: 'gateway'; zone: string; name: string };


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

/** The SPIFFE id of gateway `name` of `zone`. */
export function gatewaySpiffeId(trustDomain: string, zone: string, name: string): string {
  return `spiffe://${trustDomain}/gw/${zone}/${name}`;
}

/** The zone and name of a gateway SPIFFE id of `trustDomain`, or undefined for any other id. */
export function gatewayOfSpiffeId(trustDomain: string, spiffeId: string): { zone: string; name: string } | undefined {
  const prefix = `spiffe://${trustDomain}/gw/`;
  if (!spiffeId.startsWith(prefix)) return undefined;
  const parts = spiffeId.slice(prefix.length).split('/');
  const [zone, name] = parts;
  if (parts.length !== 2 || zone === undefined || name === undefined) return undefined;
  return SERVICE_NAME_PATTERN.test(zone) && SERVICE_NAME_PATTERN.test(name) ? { zone, name } : undefined;
}

/**
 * The mesh identity of a certificate's URI SANs: exactly one URI SAN, naming a service sidecar
 * or a gateway of `trustDomain`. A certificate with several URI SANs is refused, as the control
 * plane never issues one.
 */
export function peerIdentityOf(trustDomain: string, uriSans: readonly string[]): PeerIdentity | undefined {
  if (uriSans.length !== 1 || uriSans[0] === undefined) return undefined;
  const id = uriSans[0];
  const service = serviceOfSpiffeId(trustDomain, id);
  if (service !== undefined) return { kind: 'service', service };
  const gateway = gatewayOfSpiffeId(trustDomain, id);
  return gateway === undefined ? undefined : { kind: 'gateway', ...gateway };
}

/** The SPIFFE id of a peer identity. */
export function spiffeIdOf(trustDomain: string, peer: PeerIdentity): string {
  return peer.kind === 'service' ? serviceSpiffeId(trustDomain, peer.service) : gatewaySpiffeId(trustDomain, peer.zone, peer.name);
}
