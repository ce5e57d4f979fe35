/**
 * Service names are DNS labels (lowercase letters, digits and '-', 1..63 characters): they
 * appear in `<service>.mesh` names, SPIFFE ids, OPEN frames and config keys.
 */
export const SERVICE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Sidecar ids (`sc-<hex>`) and gateway ids (`gw-<hex>`): the common name of a leaf certificate. */
export const SIDECAR_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/**
 * A gateway key, `<zone>/<name>`: both DNS labels. It names one gateway in the zone graph, in
 * routes and in TUNNEL paths; the gateway's SPIFFE id is `spiffe://<td>/gw/<zone>/<name>`.
 */
export const GATEWAY_KEY_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** `<zone>/<name>` of a gateway. */
export function gatewayKey(zone: string, name: string): string {
  return `${zone}/${name}`;
}

/** The zone of a gateway key. */
export function zoneOfGatewayKey(key: string): string {
  return key.slice(0, key.indexOf('/'));
}
