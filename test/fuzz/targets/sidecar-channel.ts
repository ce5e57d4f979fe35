/**
 * Target `sidecar-channel`: decodeSidecarMessage and decodeControlPlaneMessage on one binary
 * frame each. Valid messages of every type (snapshots and deltas carrying valid config
 * entries) are mutated as values, then packed, and sometimes mutated as bytes.
 *
 * Properties: only ValidationError `TRELLIS_ERR_INVALID`; an accepted message encodes and
 * decodes back to the same message.
 */
import fc from 'fast-check';
import { decodeControlPlaneMessage, decodeSidecarMessage, encodeControlMessage, REPORT_HISTOGRAM_BOUNDS_MS } from '../../../proto/control.js';
import type { ControlPlaneMessage, SidecarMessage } from '../../../proto/control.js';
import { ValidationError } from '../../../proto/errors.js';
import { applyByteMutations, byteMutationArbitrary } from '../bytes.js';
import { defineTarget, ensure, expectTyped, fromBase64, jsonObject, oneByOne, toBase64 } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { packRaw } from '../msgpack-raw.js';
import { configEntryArbitrary, gatewayKey, hostPort, linkUrl, mutateValueAll, valueMutationArbitrary } from '../values.js';
import { packValue } from './config-entry.js';

export interface SidecarChannelInput {
  /** Who reads the frame: the control plane (a sidecar's message) or a sidecar (the control plane's). */
  reader: 'control-plane' | 'sidecar';
  bytes: Buffer;
}

const CONTRACT: ErrorContract = { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_INVALID']) };

const version = fc.oneof(fc.nat(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER));
const pem = fc.string({ minLength: 1, maxLength: 80 }).map((body) => `-----BEGIN CERTIFICATE REQUEST-----\n${body}\n-----END CERTIFICATE REQUEST-----\n`);

const sidecarMessage: fc.Arbitrary<SidecarMessage> = fc.oneof(
  fc.record({ type: fc.constant('register' as const), address: hostPort, zone: fc.stringMatching(/^[A-Za-z0-9._-]{0,63}$/), weight: fc.integer({ min: 1, max: 1000 }) }),
  fc.record({ type: fc.constant('register-gateway' as const), addresses: fc.array(linkUrl, { maxLength: 8 }) }),
  fc.record({ type: fc.constant('gateway-links' as const), peers: fc.array(gatewayKey, { maxLength: 8 }) }),
  fc.record({ type: fc.constant('ack' as const), version }),
  fc.record({ type: fc.constant('renew' as const), csrPem: pem }),
  fc.record({ type: fc.constant('health' as const), healthy: fc.boolean() }),
  fc.constant({ type: 'deregister' as const }),
  reportArbitrary(),
  fc.record({ type: fc.constant('subscribe' as const), services: fc.array(fc.constantFrom('db', 'cache', 'a-b'), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant('unsubscribe' as const), services: fc.array(fc.constantFrom('db', 'web'), { minLength: 1, maxLength: 4 }) }),
  fc.record({ type: fc.constant('nack' as const), version, haveVersion: version }),
  fc.record({
    type: fc.constant('register' as const),
    address: hostPort,
    zone: fc.constant('z'),
    weight: fc.constant(1),
    channel: fc.integer({ min: 1, max: 3 }),
    services: fc.array(fc.constantFrom('db', 'cache'), { maxLength: 3 }),
    resume: fc.record({ version, services: fc.array(fc.constantFrom('db'), { maxLength: 1 }) }),
  }),
);

/** Channel version 2's `report`, small: every list short, names from the wire's code names. */
function reportArbitrary(): fc.Arbitrary<SidecarMessage> {
  const count = fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER));
  const codes = fc.dictionary(fc.constantFrom('POLICY_DENIED', 'APP_UNREACHABLE', 'STREAM_ABORTED', 'UNKNOWN(99)'), count, { maxKeys: 4 });
  const histogram = fc.record({ counts: fc.array(count, { minLength: REPORT_HISTOGRAM_BOUNDS_MS.length + 1, maxLength: REPORT_HISTOGRAM_BOUNDS_MS.length + 1 }), sumMs: fc.double({ min: 0, max: 1e9, noNaN: true }) });
  const service = fc.constantFrom('api', 'web', 'db-1');
  return fc.record({
    type: fc.constant('report' as const),
    software: fc.string({ maxLength: 32 }),
    configVersion: version,
    certExpiresAt: version,
    streamsActive: fc.record({ inbound: count, outbound: count }),
    bytes: fc.record({ in: count, out: count }),
    linksActive: count,
    upstreams: fc.array(fc.record({ service, opened: count, active: count, failed: codes, connectMs: histogram, durationMs: histogram }), { maxLength: 3 }),
    denials: fc.array(fc.record({ source: service, count }), { maxLength: 3 }),
    errors: codes,
    peers: fc.array(fc.record({ peer: hostPort, rttMs: fc.double({ min: 0, max: 3_600_000, noNaN: true }) }), { maxLength: 3 }),
    ejections: fc.array(fc.record({ service, count }), { maxLength: 3 }),
    // Added later to version 2: absent from older senders, so sometimes left out.
    certRenewalFailing: fc.boolean(),
    routes: fc.array(service, { maxLength: 3 }),
  }, { requiredKeys: ['type', 'software', 'configVersion', 'certExpiresAt', 'streamsActive', 'bytes', 'linksActive', 'upstreams', 'denials', 'errors', 'peers', 'ejections'] });
}

/** The smallest valid report, with the fields added later to version 2. */
function reportSeed(extra: Record<string, unknown>): Record<string, unknown> {
  const histogram = { counts: new Array<number>(REPORT_HISTOGRAM_BOUNDS_MS.length + 1).fill(0), sumMs: 0 };
  return {
    type: 'report', software: '0.1.0', configVersion: 1, certExpiresAt: 1, streamsActive: { inbound: 0, outbound: 0 }, bytes: { in: 0, out: 0 }, linksActive: 0,
    upstreams: [{ service: 'api', opened: 1, active: 0, failed: {}, connectMs: histogram, durationMs: histogram }], denials: [], errors: {}, peers: [], ejections: [], ...extra,
  };
}

const controlPlaneMessage: fc.Arbitrary<ControlPlaneMessage> = fc.oneof(
  fc.record({ type: fc.constant('snapshot' as const), version, entries: fc.array(configEntryArbitrary, { maxLength: 4 }) }),
  fc.record({
    type: fc.constant('delta' as const),
    version,
    baseVersion: version,
    changes: fc.array(fc.oneof(configEntryArbitrary, fc.constantFrom<[string, null]>(['policy/default', null], ['endpoint/a/b', null])), { maxLength: 4 }),
  }),
  fc.record({ type: fc.constant('certificate' as const), certPem: pem, caPems: fc.array(pem, { minLength: 1, maxLength: 2 }), expiresAt: version }),
  fc.record({ type: fc.constant('error' as const), code: fc.constantFrom('TRELLIS_ERR_INVALID', 'TRELLIS_ERR_BAD_CSR'), message: fc.string({ maxLength: 60 }) }),
);

const arbitrary: fc.Arbitrary<SidecarChannelInput> = fc
  .record({
    reader: fc.constantFrom('control-plane' as const, 'sidecar' as const),
    sidecar: sidecarMessage,
    controlPlane: controlPlaneMessage,
    // Sometimes the message of the other direction: a sidecar must refuse a `register`.
    crossed: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
    valueMutations: fc.array(valueMutationArbitrary, { maxLength: 3 }),
    byteMutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(byteMutationArbitrary, { minLength: 1, maxLength: 3 }) }),
    packing: fc.constantFrom('channel' as const, 'plain' as const),
  })
  .map(({ reader, sidecar, controlPlane, crossed, valueMutations, byteMutations, packing }) => {
    const message: unknown = (reader === 'control-plane') !== crossed ? sidecar : controlPlane;
    const mutated = mutateValueAll(message, valueMutations);
    // The channel's own encoder for what it can encode, plain msgpack otherwise.
    let bytes: Buffer;
    try {
      bytes = packing === 'channel' ? Buffer.from(encodeControlMessage(mutated as SidecarMessage)) : packValue(mutated);
    } catch {
      bytes = packValue(mutated);
    }
    return { reader, bytes: applyByteMutations(bytes, byteMutations) };
  });

function decoderOf(reader: SidecarChannelInput['reader']): (bytes: Uint8Array) => SidecarMessage | ControlPlaneMessage {
  return reader === 'control-plane' ? decodeSidecarMessage : decodeControlPlaneMessage;
}

function check(input: SidecarChannelInput): void {
  const decode = decoderOf(input.reader);
  const first = expectTyped(CONTRACT, input.reader === 'control-plane' ? 'decodeSidecarMessage' : 'decodeControlPlaneMessage', () => decode(input.bytes));
  if (!first.ok) return;
  const again = expectTyped(CONTRACT, 'decoding the re-encoded message', () => decode(encodeControlMessage(first.value)));
  // JSON, so that -0 and 0 (which msgpack may not tell apart) compare equal.
  ensure(again.ok && JSON.stringify(again.value) === JSON.stringify(first.value), () => `a ${first.value.type} message does not survive encode/decode`);
}

function seeds(): SeedInput<SidecarChannelInput>[] {
  const cp = (name: string, note: string, bytes: Buffer): SeedInput<SidecarChannelInput> => ({ name, note, input: { reader: 'sidecar', bytes } });
  const sc = (name: string, note: string, bytes: Buffer): SeedInput<SidecarChannelInput> => ({ name, note, input: { reader: 'control-plane', bytes } });
  const str = (text: string) => ({ t: 'str' as const, bytes: new Uint8Array(Buffer.from(text)), width: 0 as const });
  return [
    sc('register-valid', 'a sidecar registering', Buffer.from(encodeControlMessage({ type: 'register', address: '10.0.0.1:7400', zone: 'eu', weight: 10 }))),
    sc('ack-u64-max', 'ack whose version is uint64 2^64-1', packRaw({ t: 'map', width: 0, entries: [[str('type'), str('ack')], [str('version'), { t: 'uint', value: 2n ** 64n - 1n, width: 8 }]] })),
    sc('ack-negative-zero', 'ack whose version is float64 -0', packRaw({ t: 'map', width: 0, entries: [[str('type'), str('ack')], [str('version'), { t: 'f64', value: -0 }]] })),
    sc('map-declares-4g', 'a map32 declaring 2^32-1 entries and holding one', packRaw({ t: 'map', width: 4, declared: 0xffffffff, entries: [[str('type'), str('deregister')]] })),
    sc('map-integer-keys', 'a map with integer keys and a type field', packRaw({ t: 'map', width: 0, entries: [[{ t: 'uint', value: 1n, width: 0 }, str('x')], [str('type'), str('health')], [str('healthy'), { t: 'bool', value: true }]] })),
    sc('proto-key', 'a deregister whose map also holds a __proto__ key', packRaw({ t: 'map', width: 0, entries: [[str('__proto__'), { t: 'map', width: 0, entries: [[str('type'), str('ack')]] }], [str('type'), str('deregister')]] })),
    sc('ext-timestamp', 'a health message whose healthy field is a msgpack timestamp ext', Buffer.concat([Buffer.from([0x82]), packRaw(str('type')), packRaw(str('health')), packRaw(str('healthy')), Buffer.from([0xd6, 0xff, 0, 0, 0, 1])])),
    sc('nested-10000', 'ten thousand nested arrays (a stack-depth probe for the unpacker)', Buffer.concat([Buffer.alloc(10000, 0x91), Buffer.from([0xc0])])),
    sc('not-msgpack', 'the never-used byte 0xc1', Buffer.from([0xc1])),
    sc('report-renewal-failing-routes', 'a report saying its renewal fails, routing to two services', packValue(reportSeed({ certRenewalFailing: true, routes: ['api', 'db'] }))),
    sc('report-routes-257', 'a report routing to 257 services (the limit is 256)', packValue(reportSeed({ routes: Array.from({ length: 257 }, (_, i) => `svc-${i}`) }))),
    sc('report-renewal-failing-string', 'a report whose certRenewalFailing is the string "true"', packValue(reportSeed({ certRenewalFailing: 'true' }))),
    sc('trailing-bytes', 'a valid deregister followed by a second value', Buffer.concat([Buffer.from(encodeControlMessage({ type: 'deregister' })), Buffer.from([0xc0])])),
    cp('snapshot-valid', 'a snapshot with one entry of each kind', Buffer.from(encodeControlMessage({ type: 'snapshot', version: 3, entries: [['policy/default', { action: 'deny' }], ['route/a/b', { from: 'a', to: 'b', paths: [['a/g', 'b/g']] }]] }))),
    cp('delta-entry-key-1025', 'a delta whose change key is 1025 characters (the limit is 1024)', packValue({ type: 'delta', version: 2, baseVersion: 1, changes: [['x'.repeat(1025), null]] })),
    cp('snapshot-entry-not-a-pair', 'a snapshot entry of three elements', packValue({ type: 'snapshot', version: 1, entries: [['policy/default', { action: 'allow' }, 'extra']] })),
    cp('certificate-no-ca', 'a certificate with an empty caPems', packValue({ type: 'certificate', certPem: 'x', caPems: [], expiresAt: 1 })),
  ];
}

export const sidecarChannelTarget = defineTarget<SidecarChannelInput>({
  name: 'sidecar-channel',
  summary: 'decodeSidecarMessage / decodeControlPlaneMessage over mutated msgpack messages',
  arbitrary: oneByOne(arbitrary),
  check,
  toJson: (input) => ({ reader: input.reader, bytes: toBase64(input.bytes) }),
  fromJson: (json) => {
    const fields = jsonObject(json, 'sidecar-channel input');
    if (fields.reader !== 'control-plane' && fields.reader !== 'sidecar') throw new Error('reader is not control-plane or sidecar');
    return { reader: fields.reader, bytes: fromBase64(fields.bytes, 'bytes') };
  },
  seeds,
});
