/**
 * Control-plane wire messages: the msgpack messages on the sidecar channel, the key/value
 * entries of the pushed config, and the JSON bodies of the REST API (see PROTOCOL.md,
 * "Control-plane messages"). Every input is validated here, so both ends share one reading.
 *
 * Pure: schemas, parsing and msgpack encoding only.
 */
import { pack, unpack } from 'msgpackr';
import { z } from 'zod';
import { GATEWAY_KEY_PATTERN, SERVICE_NAME_PATTERN, SIDECAR_ID_PATTERN } from './names.js';
import { ValidationError } from './errors.js';
import { Limits } from './frames.js';

/** Trust domain used when none is configured. */
export const DEFAULT_TRUST_DOMAIN = 'trellis.local';
/** Path of the sidecar WebSocket channel on the control plane's HTTPS listener. */
export const SIDECAR_CHANNEL_PATH = '/v1/sidecar';
/** Largest sidecar-channel message, in bytes (either direction). */
export const MAX_CONTROL_MESSAGE_BYTES = 1024 * 1024;
/**
 * Highest sidecar-channel version this build speaks. 2 adds scoped push (subscriptions, `nack`,
 * resuming from a version: PROTOCOL.md, "Scoped push"), negotiated in `register` and answered
 * in snapshots, and reports (PROTOCOL.md, "Reports"), which a control plane announces in its
 * upgrade answer (`Trellis-Channel-Version`).
 */
export const CHANNEL_VERSION = 2;
/**
 * The longest a sidecar or gateway waits between two attempts to reach the control plane (its
 * back-off, jittered between half of it and all of it). A restarted control plane counts on its
 * peers coming back within this much of its start, and holds their entries at least that long.
 */
export const MAX_RECONNECT_DELAY_MS = 5000;
/** Most services one session may subscribe to. */
export const MAX_SUBSCRIPTIONS = 1024;
/** Most services named in one `subscribe` or `unsubscribe`. */
export const MAX_SERVICES_PER_SUBSCRIBE = 256;
/** Largest REST request body, in bytes. */
export const MAX_API_BODY_BYTES = 64 * 1024;
/** Service names: see names.ts. */
export { SERVICE_NAME_PATTERN } from './names.js';

export { ControlErrorCode } from './control-errors.js';

// ---- fields ----

export const serviceNameSchema = z.string().regex(SERVICE_NAME_PATTERN, 'not a valid service name (lowercase letters, digits and inner dashes, at most 63)');
export const sidecarIdSchema = z.string().regex(SIDECAR_ID_PATTERN, 'not a valid sidecar id');
export const policyActionSchema = z.enum(['allow', 'deny']);
/** A rule's source: a service name, or `*` for every caller. */
export const policySourceSchema = z.union([z.literal('*'), serviceNameSchema]);
const hostPortPattern = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})$/;
const addressSchema = z
  .string()
  .max(300)
  .refine((s) => {
    const port = Number(hostPortPattern.exec(s)?.[2] ?? 0);
    return port >= 1 && port <= 65535;
  }, 'not host:port');
/** `tls://HOST:PORT` or `wss://HOST:PORT[/PATH]`: where a link listener is reached, and over what. */
export const LINK_URL_PATTERN = /^(tls|wss):\/\/(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})(\/[A-Za-z0-9._~/-]{0,200})?$/;
export const linkUrlSchema = z
  .string()
  .max(300)
  .refine((s) => {
    const match = LINK_URL_PATTERN.exec(s);
    const port = Number(match?.[3] ?? 0);
    // A path only makes sense for WebSocket links.
    return port >= 1 && port <= 65535 && (match?.[4] === undefined || match[1] === 'wss');
  }, 'not tls://HOST:PORT or wss://HOST:PORT[/PATH]');
/** A link address: `host:port` (TLS, as in version 1) or a link URL. */
const linkAddressSchema = z.union([addressSchema, linkUrlSchema]);
export const zoneNameSchema = z.string().regex(SERVICE_NAME_PATTERN, 'not a valid zone name (lowercase letters, digits and inner dashes, at most 63)');
export const gatewayNameSchema = z.string().regex(SERVICE_NAME_PATTERN, 'not a valid gateway name (lowercase letters, digits and inner dashes, at most 63)');
export const gatewayKeySchema = z.string().regex(GATEWAY_KEY_PATTERN, 'not a gateway key <zone>/<name>');
/** Most addresses a gateway advertises; most candidate paths in one route. */
export const MAX_GATEWAY_ADDRESSES = 8;
export const MAX_ROUTE_PATHS = 16;
/** Most gateways one gateway reports links to. */
export const MAX_GATEWAY_LINKS = 256;
const versionSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const pemSchema = z.string().min(1).max(64 * 1024);

// ---- config entries ----

/** `endpoint/<service>/<sidecarId>`: one sidecar's link listener for a service. */
export const endpointValueSchema = z.object({
  sidecarId: sidecarIdSchema,
  service: serviceNameSchema,
  address: linkAddressSchema,
  zone: z.string().regex(/^[A-Za-z0-9._-]{0,63}$/, 'not a valid zone'),
  weight: z.number().int().min(1).max(1000),
  healthy: z.boolean(),
});
/**
 * `closeExisting` (deny only): the decision also applies to streams already open, which the
 * destination sidecar resets with POLICY_DENIED as soon as it has the entry. Absent means false.
 */
const closeExistingSchema = z.boolean().optional();
/** `policy/default`: what happens to a call no rule matches. */
export const policyDefaultValueSchema = z.object({ action: policyActionSchema, closeExisting: closeExistingSchema });
/** `policy/rule/<from>/<to>`: calls from `from` (or anyone, `*`) to `to` are allowed or denied. */
export const policyRuleValueSchema = z.object({ from: policySourceSchema, to: serviceNameSchema, action: policyActionSchema, closeExisting: closeExistingSchema });
/** `revoked/sidecar/<id>`: every certificate whose common name is this sidecar (or gateway) id is revoked. */
export const revokedSidecarValueSchema = z.object({ sidecarId: sidecarIdSchema, revokedAt: versionSchema });
/**
 * `revoked/service/<service>`: every certificate of the service whose notBefore is at or before
 * `notBeforeCutoff` (ms since the epoch) is revoked; certificates issued later are not.
 * While `refuseJoins` holds, the control plane issues the service no new certificate.
 */
export const revokedServiceValueSchema = z.object({ service: serviceNameSchema, revokedAt: versionSchema, notBeforeCutoff: versionSchema, refuseJoins: z.boolean() });

/**
 * `gateway/<zone>/<name>`: a gateway, the addresses it advertises (tried in order; none for a
 * gateway nobody can reach) and the gateways of other zones it holds live links to.
 */
export const gatewayValueSchema = z.object({
  zone: zoneNameSchema,
  name: gatewayNameSchema,
  gatewayId: sidecarIdSchema,
  addresses: z.array(linkUrlSchema).max(MAX_GATEWAY_ADDRESSES),
  links: z.array(gatewayKeySchema).max(MAX_GATEWAY_LINKS),
});
/** A path: the gateways a tunnel crosses, from the source zone's to the destination zone's. */
export const routePathSchema = z
  .array(gatewayKeySchema)
  .min(1)
  .max(Limits.MAX_TUNNEL_HOPS)
  .refine((path) => new Set(path).size === path.length, 'a path crosses a gateway twice');
/** `route/<from>/<to>`: the candidate paths from zone `from` to zone `to`, best first. */
export const routeValueSchema = z.object({
  from: zoneNameSchema,
  to: zoneNameSchema,
  paths: z.array(routePathSchema).max(MAX_ROUTE_PATHS),
});

/** Most roots a trust bundle holds (two while the CA rotates). */
export const MAX_TRUST_BUNDLE_ROOTS = 4;
/** Lowercase hex SHA-256 of a certificate's DER. */
export const certificateFingerprintSchema = z.string().regex(/^[0-9a-f]{64}$/, 'not a lowercase hex SHA-256 fingerprint');
/** `trust/bundle`: the roots to trust, and the fingerprint of the one that signs leaves now. */
export const trustBundleValueSchema = z
  .object({ caPems: z.array(pemSchema).min(1).max(MAX_TRUST_BUNDLE_ROOTS), signer: certificateFingerprintSchema });
export type TrustBundleValue = z.infer<typeof trustBundleValueSchema>;
export const TRUST_BUNDLE_KEY = 'trust/bundle';

export type EndpointValue = z.infer<typeof endpointValueSchema>;
export type GatewayValue = z.infer<typeof gatewayValueSchema>;
export type RouteValue = z.infer<typeof routeValueSchema>;
export type RevokedSidecarValue = z.infer<typeof revokedSidecarValueSchema>;
export type RevokedServiceValue = z.infer<typeof revokedServiceValueSchema>;
export type PolicyAction = z.infer<typeof policyActionSchema>;
export type PolicyDefaultValue = z.infer<typeof policyDefaultValueSchema>;
export type PolicyRuleValue = z.infer<typeof policyRuleValueSchema>;
export type ConfigValue = EndpointValue | PolicyDefaultValue | PolicyRuleValue | GatewayValue | RouteValue | RevokedSidecarValue | RevokedServiceValue | TrustBundleValue;
/** One config entry, `[key, value]`. */
export type ConfigEntry = [key: string, value: ConfigValue];
/** One change in a delta; `null` means the key was deleted. */
export type ConfigChange = [key: string, value: ConfigValue | null];

export const POLICY_DEFAULT_KEY = 'policy/default';
export const ENDPOINT_KEY_PREFIX = 'endpoint/';
export const POLICY_RULE_KEY_PREFIX = 'policy/rule/';
export const GATEWAY_KEY_PREFIX = 'gateway/';
export const ROUTE_KEY_PREFIX = 'route/';
/** Revocations are mesh-wide: every sidecar and gateway gets every entry under this prefix. */
export const REVOKED_KEY_PREFIX = 'revoked/';
export const REVOKED_SIDECAR_KEY_PREFIX = 'revoked/sidecar/';
export const REVOKED_SERVICE_KEY_PREFIX = 'revoked/service/';

export function endpointKey(service: string, sidecarId: string): string {
  return `${ENDPOINT_KEY_PREFIX}${service}/${sidecarId}`;
}
export function policyRuleKey(from: string, to: string): string {
  return `${POLICY_RULE_KEY_PREFIX}${from}/${to}`;
}
export function gatewayEntryKey(zone: string, name: string): string {
  return `${GATEWAY_KEY_PREFIX}${zone}/${name}`;
}
export function routeKey(from: string, to: string): string {
  return `${ROUTE_KEY_PREFIX}${from}/${to}`;
}
export function revokedSidecarKey(sidecarId: string): string {
  return `${REVOKED_SIDECAR_KEY_PREFIX}${sidecarId}`;
}
export function revokedServiceKey(service: string): string {
  return `${REVOKED_SERVICE_KEY_PREFIX}${service}`;
}

/**
 * Validates `value` against the schema its key's kind demands and checks the key agrees with
 * the value. Returns `undefined` for a key of a kind this build does not know, so that newer
 * control planes can add kinds without breaking older sidecars.
 * @throws ValidationError naming the key and the problem.
 */
export function parseConfigEntry(key: string, value: unknown): ConfigValue | undefined {
  const parts = key.split('/');
  let parsed: ConfigValue;
  let expectedKey: string;
  if (parts[0] === 'endpoint') {
    const endpoint = parseWithSchema(endpointValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [endpoint, endpointKey(endpoint.service, endpoint.sidecarId)];
  } else if (key === POLICY_DEFAULT_KEY) {
    [parsed, expectedKey] = [parseWithSchema(policyDefaultValueSchema, value, `config entry "${key}"`), key];
  } else if (parts[0] === 'policy' && parts[1] === 'rule') {
    const rule = parseWithSchema(policyRuleValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [rule, policyRuleKey(rule.from, rule.to)];
  } else if (parts[0] === 'gateway') {
    const gateway = parseWithSchema(gatewayValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [gateway, gatewayEntryKey(gateway.zone, gateway.name)];
  } else if (parts[0] === 'route') {
    const route = parseWithSchema(routeValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [route, routeKey(route.from, route.to)];
  } else if (parts[0] === 'revoked' && parts[1] === 'sidecar') {
    const revoked = parseWithSchema(revokedSidecarValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [revoked, revokedSidecarKey(revoked.sidecarId)];
  } else if (parts[0] === 'revoked' && parts[1] === 'service') {
    const revoked = parseWithSchema(revokedServiceValueSchema, value, `config entry "${key}"`);
    [parsed, expectedKey] = [revoked, revokedServiceKey(revoked.service)];
  } else if (parts[0] === 'trust') {
    [parsed, expectedKey] = [parseWithSchema(trustBundleValueSchema, value, `config entry "${key}"`), TRUST_BUNDLE_KEY];
  } else {
    return undefined;
  }
  if (key !== expectedKey) throw new ValidationError(`config entry "${key}": key does not match its value ("${expectedKey}")`);
  return parsed;
}

// ---- sidecar channel ----

const channelVersionSchema = z.number().int().min(1).max(65535);
const subscriptionListSchema = z.array(serviceNameSchema).max(MAX_SUBSCRIPTIONS);
/** Channel 2: the version a reconnecting peer holds, and the services it holds in full at it. */
const resumeSchema = z.object({ version: versionSchema, services: subscriptionListSchema.optional() });
const registerMessageSchema = z.object({
  type: z.literal('register'),
  /** The sidecar's link listener as other sidecars should dial it: host:port (TLS) or a link URL. */
  address: linkAddressSchema,
  zone: endpointValueSchema.shape.zone,
  weight: endpointValueSchema.shape.weight,
  /** The app's health as the sidecar sees it now; absent from version-1 sidecars, whose register means healthy. */
  healthy: z.boolean().optional(),
  /** Highest channel version the sidecar speaks; absent: 1. */
  channel: channelVersionSchema.optional(),
  /** Channel 2: the services whose endpoints to push. */
  services: subscriptionListSchema.optional(),
  resume: resumeSchema.optional(),
});
/** A gateway's first message (its zone and name come from its certificate). */
const registerGatewayMessageSchema = z.object({
  type: z.literal('register-gateway'),
  addresses: z.array(linkUrlSchema).max(MAX_GATEWAY_ADDRESSES),
  channel: channelVersionSchema.optional(),
  resume: resumeSchema.optional(),
});
/** A gateway's live links to gateways of other zones; sent after every change. */
const gatewayLinksMessageSchema = z.object({
  type: z.literal('gateway-links'),
  peers: z.array(gatewayKeySchema).max(MAX_GATEWAY_LINKS),
});
const ackMessageSchema = z.object({ type: z.literal('ack'), version: versionSchema });
const renewMessageSchema = z.object({ type: z.literal('renew'), csrPem: pemSchema });
const healthMessageSchema = z.object({ type: z.literal('health'), healthy: z.boolean() });
const deregisterMessageSchema = z.object({ type: z.literal('deregister') });
/** Upgrade answer headers of channel version 2 (lowercase, as Node reads them). */
export const CHANNEL_VERSION_HEADER = 'trellis-channel-version';
export const REPORT_INTERVAL_HEADER = 'trellis-report-interval-ms';
/** Bounds of the interval a control plane may ask reports at. */
export const MIN_REPORT_INTERVAL_MS = 1000;
export const MAX_REPORT_INTERVAL_MS = 60_000;
/** Upper bounds (ms) of the report histograms' buckets; one more bucket counts larger values. */
export const REPORT_HISTOGRAM_BOUNDS_MS: readonly number[] = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];
/** Most destinations, callers, peers and ejection entries in one report. */
export const MAX_REPORT_ENTRIES = 64;
/** Most error codes in a report's `errors`, and in one destination's `failed`. */
export const MAX_REPORT_ERROR_CODES = 32;
export const MAX_REPORT_FAILURE_CODES = 16;
/** Most services in a report's `routes` (as many as one `subscribe` may name). */
export const MAX_REPORT_ROUTES = MAX_SERVICES_PER_SUBSCRIBE;
/** A report of every list at its cap, every name at its longest, encodes to fewer bytes than this. */
export const MAX_REPORT_BYTES = 128 * 1024;
/**
 * The report interval a control plane asked for in its upgrade answer, or `undefined` when it
 * announced no channel version 2 (then it takes no reports) or a malformed interval.
 */
export function reportIntervalFromHeaders(headers: Record<string, string | string[] | undefined>): number | undefined {
  const version = Number(headers[CHANNEL_VERSION_HEADER]);
  const intervalMs = Number(headers[REPORT_INTERVAL_HEADER]);
  if (!Number.isInteger(version) || version < 2) return undefined;
  if (!Number.isInteger(intervalMs) || intervalMs < MIN_REPORT_INTERVAL_MS || intervalMs > MAX_REPORT_INTERVAL_MS) return undefined;
  return intervalMs;
}
const countSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const errorCodeNameSchema = z.string().regex(/^[A-Z0-9_()]{1,32}$/, 'not an error code name');
const countsByCode = (max: number) =>
  z.record(errorCodeNameSchema, countSchema).refine((counts) => Object.keys(counts).length <= max, `at most ${max} error codes`);
const histogramSchema = z.object({
  counts: z.array(countSchema).length(REPORT_HISTOGRAM_BOUNDS_MS.length + 1),
  sumMs: z.number().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
const reportMessageSchema = z.object({
  type: z.literal('report'),
  software: z.string().max(32),
  configVersion: versionSchema,
  certExpiresAt: versionSchema,
  appHealthy: z.boolean().optional(),
  streamsActive: z.object({ inbound: countSchema, outbound: countSchema }),
  bytes: z.object({ in: countSchema, out: countSchema }),
  linksActive: countSchema,
  upstreams: z
    .array(z.object({ service: serviceNameSchema, opened: countSchema, active: countSchema, failed: countsByCode(MAX_REPORT_FAILURE_CODES), connectMs: histogramSchema, durationMs: histogramSchema }))
    .max(MAX_REPORT_ENTRIES),
  denials: z.array(z.object({ source: serviceNameSchema, count: countSchema })).max(MAX_REPORT_ENTRIES),
  errors: countsByCode(MAX_REPORT_ERROR_CODES),
  peers: z.array(z.object({ peer: z.string().max(256), rttMs: z.number().nonnegative().max(3_600_000) })).max(MAX_REPORT_ENTRIES),
  ejections: z.array(z.object({ service: serviceNameSchema, count: countSchema })).max(MAX_REPORT_ENTRIES),
  /** Absent from senders older than the field: not known. */
  certRenewalFailing: z.boolean().optional(),
  /** The services the sender routes to (upstreams, proxy-port destinations in use); absent from older senders. */
  routes: z.array(serviceNameSchema).max(MAX_REPORT_ROUTES).optional(),
});
const nackMessageSchema = z.object({ type: z.literal('nack'), version: versionSchema, haveVersion: versionSchema });
const serviceBatchSchema = z.array(serviceNameSchema).min(1).max(MAX_SERVICES_PER_SUBSCRIBE);
const subscribeMessageSchema = z.object({ type: z.literal('subscribe'), services: serviceBatchSchema });
const unsubscribeMessageSchema = z.object({ type: z.literal('unsubscribe'), services: serviceBatchSchema });
const sidecarMessageSchema = z.discriminatedUnion('type', [
  registerMessageSchema,
  registerGatewayMessageSchema,
  gatewayLinksMessageSchema,
  ackMessageSchema,
  renewMessageSchema,
  healthMessageSchema,
  deregisterMessageSchema,
  reportMessageSchema,
  nackMessageSchema,
  subscribeMessageSchema,
  unsubscribeMessageSchema,
]);

/** Sent first on the channel; (re)places this sidecar's endpoint with the health it reports (`true` when absent). */
export type RegisterMessage = z.infer<typeof registerMessageSchema>;
/** Sent first by a gateway: (re)places its `gateway/<zone>/<name>` entry. */
export type RegisterGatewayMessage = z.infer<typeof registerGatewayMessageSchema>;
/** The gateways of other zones this gateway holds live links to now. */
export type GatewayLinksMessage = z.infer<typeof gatewayLinksMessageSchema>;
/** The sidecar has applied config up to `version`. */
export type AckMessage = z.infer<typeof ackMessageSchema>;
/** Asks for a new leaf certificate for the session's identity. */
export type RenewMessage = z.infer<typeof renewMessageSchema>;
/** The sidecar's app became (un)healthy. */
export type HealthMessage = z.infer<typeof healthMessageSchema>;
/** The sidecar is draining: remove its endpoint now rather than when its lease ends. */
export type DeregisterMessage = z.infer<typeof deregisterMessageSchema>;
/** Channel version 2: what the sender did since it started (see PROTOCOL.md, "Reports"). */
export type ReportMessage = z.infer<typeof reportMessageSchema>;
/** A report histogram: one count per bound of {@link REPORT_HISTOGRAM_BOUNDS_MS}, plus one for larger values. */
export type ReportHistogram = z.infer<typeof histogramSchema>;
/** Channel 2: the message of `version` did not follow `haveVersion`, the version held; asks for a snapshot. */
export type NackMessage = z.infer<typeof nackMessageSchema>;
/** Channel 2: also push the endpoints of `services`. */
export type SubscribeMessage = z.infer<typeof subscribeMessageSchema>;
/** Channel 2: stop pushing the endpoints of `services`. */
export type UnsubscribeMessage = z.infer<typeof unsubscribeMessageSchema>;
export type SidecarMessage = z.infer<typeof sidecarMessageSchema>;

const rawEntrySchema = z.tuple([z.string().max(1024), z.unknown()]);
const controlPlaneMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('snapshot'), version: versionSchema, entries: z.array(rawEntrySchema), channel: channelVersionSchema.optional(), subscribed: subscriptionListSchema.optional() }),
  z.object({
    type: z.literal('delta'),
    version: versionSchema,
    baseVersion: versionSchema,
    changes: z.array(rawEntrySchema),
    channel: channelVersionSchema.optional(),
    subscribed: subscriptionListSchema.optional(),
  }),
  z.object({ type: z.literal('certificate'), certPem: pemSchema, caPems: z.array(pemSchema).min(1), expiresAt: versionSchema }),
  z.object({ type: z.literal('error'), code: z.string().max(64), message: z.string().max(4096) }),
]);

/**
 * The whole config at `version` (channel 2: the session's scope of it); replaces whatever the
 * sidecar had. `channel` answers the register's; `subscribed` lists the services whose
 * endpoints it carries.
 */
export interface SnapshotMessage { type: 'snapshot'; version: number; entries: ConfigEntry[]; channel?: number; subscribed?: string[] }
/**
 * Changes that take config from `baseVersion` to `version`. Channel 2: `subscribed` lists the
 * services whose endpoints it carries in full (replacing what the sidecar held of them).
 */
export interface DeltaMessage { type: 'delta'; version: number; baseVersion: number; changes: ConfigChange[]; channel?: number; subscribed?: string[] }
/** Answer to `renew`. `expiresAt` is in ms since the epoch. */
export interface CertificateMessage { type: 'certificate'; certPem: string; caPems: string[]; expiresAt: number }
/** A refused message; after an invalid one the control plane closes the channel (1008). */
export interface ErrorMessage { type: 'error'; code: string; message: string }
export type ControlPlaneMessage = SnapshotMessage | DeltaMessage | CertificateMessage | ErrorMessage;

/**
 * Validates a decoded sidecar → control-plane message.
 * @throws ValidationError (`TRELLIS_ERR_INVALID`) naming the bad field.
 */
export function parseSidecarMessage(raw: unknown): SidecarMessage {
  return parseWithSchema(sidecarMessageSchema, raw, 'sidecar message');
}

/**
 * Validates a decoded control-plane → sidecar message, including every config entry.
 * Entries of unknown kinds are dropped (see {@link parseConfigEntry}).
 * @throws ValidationError naming the bad field or entry.
 */
export function parseControlPlaneMessage(raw: unknown): ControlPlaneMessage {
  const message = parseWithSchema(controlPlaneMessageSchema, raw, 'control-plane message');
  if (message.type === 'snapshot') {
    const entries: ConfigEntry[] = [];
    for (const [key, value] of message.entries) {
      const parsed = parseConfigEntry(key, value);
      if (parsed !== undefined) entries.push([key, parsed]);
    }
    return { ...message, entries };
  }
  if (message.type === 'delta') {
    const changes: ConfigChange[] = [];
    for (const [key, value] of message.changes) {
      const parsed = value === null ? null : parseConfigEntry(key, value);
      if (parsed !== undefined) changes.push([key, parsed]);
    }
    return { ...message, changes };
  }
  return message;
}

/** Encodes a channel message as msgpack (one binary WebSocket frame). */
export function encodeControlMessage(message: SidecarMessage | ControlPlaneMessage): Uint8Array {
  return pack(message);
}

/** Decodes and validates one binary frame from a sidecar. @throws ValidationError */
export function decodeSidecarMessage(bytes: Uint8Array): SidecarMessage {
  return parseSidecarMessage(unpackChecked(bytes));
}

/** Decodes and validates one binary frame from the control plane. @throws ValidationError */
export function decodeControlPlaneMessage(bytes: Uint8Array): ControlPlaneMessage {
  return parseControlPlaneMessage(unpackChecked(bytes));
}

function unpackChecked(bytes: Uint8Array): unknown {
  if (bytes.byteLength > MAX_CONTROL_MESSAGE_BYTES) {
    throw new ValidationError(`message of ${bytes.byteLength} bytes exceeds ${MAX_CONTROL_MESSAGE_BYTES}`);
  }
  try {
    return unpack(bytes) as unknown;
  } catch (err) {
    throw new ValidationError(`message is not msgpack: ${(err as Error).message}`);
  }
}

// ---- REST API bodies ----

/** A replaced root and its successor's key and subject signed by it (see PROTOCOL.md, "CA rotation"). */
export const rootLineageSchema = z.object({ rootPem: pemSchema, crossPem: pemSchema });
export type RootLineage = z.infer<typeof rootLineageSchema>;
export const trustBundleSchema = z.object({
  trustDomain: z.string().min(1),
  caPems: z.array(pemSchema).min(1),
  lineage: z.array(rootLineageSchema).max(64).optional(),
});
/** `GET /v1/trust-bundle`. */
export type TrustBundle = z.infer<typeof trustBundleSchema>;

export const joinRequestSchema = z.object({ token: z.string().max(4096), csrPem: pemSchema, service: serviceNameSchema });
/** `POST /v1/join` body. */
export type JoinRequest = z.infer<typeof joinRequestSchema>;
export const joinResponseSchema = z.object({
  sidecarId: sidecarIdSchema,
  service: serviceNameSchema,
  spiffeId: z.string(),
  certPem: pemSchema,
  caPems: z.array(pemSchema).min(1),
  trustDomain: z.string(),
  expiresAt: versionSchema,
});
/** `POST /v1/join` answer. */
export type JoinResponse = z.infer<typeof joinResponseSchema>;

export const joinGatewayRequestSchema = z.object({ token: z.string().max(4096), csrPem: pemSchema, zone: zoneNameSchema, name: gatewayNameSchema });
/** `POST /v1/join-gateway` body. */
export type JoinGatewayRequest = z.infer<typeof joinGatewayRequestSchema>;
export const joinGatewayResponseSchema = z.object({
  gatewayId: sidecarIdSchema,
  zone: zoneNameSchema,
  name: gatewayNameSchema,
  spiffeId: z.string(),
  certPem: pemSchema,
  caPems: z.array(pemSchema).min(1),
  trustDomain: z.string(),
  expiresAt: versionSchema,
});
/** `POST /v1/join-gateway` answer. */
export type JoinGatewayResponse = z.infer<typeof joinGatewayResponseSchema>;

const ttlSecondsSchema = z.number().int().min(1).max(31_536_000).default(86_400);
export const createTokenRequestSchema = z.union([
  z.object({ service: serviceNameSchema, ttlSeconds: ttlSecondsSchema, once: z.boolean().default(false) }).strict(),
  z.object({ gateway: gatewayNameSchema, zone: zoneNameSchema, ttlSeconds: ttlSecondsSchema, once: z.boolean().default(false) }).strict(),
]);
/**
 * `POST /v1/tokens` body: a service join token, or a gateway token; `ttlSeconds` defaults to
 * one day; with `once` the first successful join consumes the token.
 */
export type CreateTokenRequest = z.input<typeof createTokenRequestSchema>;
/** `POST /v1/tokens` answer. */
export interface CreateTokenResponse { token: string; expiresAt: number }
export const setDefaultPolicyRequestSchema = policyDefaultValueSchema;
export const putPolicyRuleRequestSchema = policyRuleValueSchema;
export const deletePolicyRuleRequestSchema = z.object({ from: policySourceSchema, to: serviceNameSchema });
export const revokeRequestSchema = z.union([z.object({ sidecarId: sidecarIdSchema }).strict(), z.object({ service: serviceNameSchema }).strict()]);
/** `POST /v1/revocations` body: one sidecar (or gateway) by id, or every current certificate of a service. */
export type RevokeRequest = z.infer<typeof revokeRequestSchema>;
export const allowJoinsRequestSchema = z.object({ service: serviceNameSchema }).strict();
/** `GET /v1/revocations` answer; also the answer of every revocation change. */
export interface RevocationsView {
  sidecars: RevokedSidecarValue[];
  services: RevokedServiceValue[];
  /** For `POST`: whether the revoked sidecar or service had an endpoint registered. */
  known?: boolean;
  version: number;
}
/** `GET /v1/policies` answer; also the answer of every policy change. */
export interface PoliciesView {
  defaultAction: PolicyAction;
  rules: PolicyRuleValue[];
  /** Config version after which this view holds. */
  version: number;
}
/** `GET /v1/services` answer. */
export interface ServicesView {
  services: Record<string, Array<Omit<EndpointValue, 'service'> & { connected: boolean }>>;
}
/** Body of every REST error answer. */
export interface ApiErrorBody { error: { code: string; message: string } }

/** Parses `value` with `schema`, throwing a ValidationError that names the first bad field. */
export function parseWithSchema<T>(schema: z.ZodType<T, unknown>, value: unknown, what: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
  throw new ValidationError(`${what}: ${where}: ${issue?.message ?? 'is invalid'}`);
}

// ---- CA status (`GET /v1/ca`, `POST /v1/ca/rotate`) ----

export const caPhaseSchema = z.enum(['stable', 'distributing', 'reissuing']);
export type CaPhase = z.infer<typeof caPhaseSchema>;
const timestampSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const caStatusSchema = z.object({
  trustDomain: z.string(),
  phase: caPhaseSchema,
  roots: z.array(
    z.object({
      fingerprint: certificateFingerprintSchema,
      notBefore: timestampSchema,
      notAfter: timestampSchema,
      role: z.enum(['signing', 'next', 'retiring']),
    }),
  ),
  /** Sidecars and gateways whose live leaf is of the retiring root. */
  oldRootHolders: z.number().int().nonnegative(),
  /** No rotation under way. */
  complete: z.boolean(),
  rotation: z.object({ startedAt: timestampSchema, completedAt: timestampSchema.optional() }).optional(),
  leaves: z.array(
    z.object({ id: z.string(), rootFingerprint: certificateFingerprintSchema, expiresAt: timestampSchema, renewalOverdue: z.boolean() }),
  ),
});
/** `GET /v1/ca`, and the answer to `POST /v1/ca/rotate`. */
export type CaStatus = z.infer<typeof caStatusSchema>;
