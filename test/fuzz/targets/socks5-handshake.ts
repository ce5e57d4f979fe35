/**
 * Target `socks5-handshake`: a SOCKS5 greeting and CONNECT request built from the protocol's
 * fields (any method list, address type, name length, port), mutated as bytes, then fed to
 * the proxy's connection logic in random chunk splits.
 *
 * Properties: only a ProxyError of a handshake code, and a reply the client can be sent;
 * bufferedBytes within one message; the bytes after a completed handshake passed on as sent;
 * the destination checked by the mesh-name rule with a typed refusal.
 */
import fc from 'fast-check';
import { applyByteMutations, byteMutationArbitrary, chunkSplitArbitrary, chunkSplitFromJson, splitChunks, toChunkSplitJson } from '../bytes.js';
import type { ChunkSplit } from '../bytes.js';
import { defineTarget, fromBase64, jsonObject, oneByOne, toBase64 } from '../fuzz-target.js';
import type { SeedInput } from '../fuzz-target.js';
import { driveProxyConnection } from '../proxy-driver.js';

export interface ProxyStreamInput {
  bytes: Buffer;
  split: ChunkSplit;
}

const methods = fc.oneof(
  fc.uint8Array({ maxLength: 8 }),
  fc.constant(Uint8Array.of(0)),
  fc.constant(new Uint8Array(255).map((_, index) => index + 1)),
);
const address: fc.Arbitrary<[number, Uint8Array]> = fc.oneof(
  fc.tuple(fc.constant(1), fc.uint8Array({ minLength: 4, maxLength: 4 })),
  fc.tuple(fc.constant(4), fc.uint8Array({ minLength: 16, maxLength: 16 })),
  fc.tuple(fc.constant(3), fc.oneof(fc.stringMatching(/^[a-z0-9-]{1,20}\.mesh$/), fc.domain(), fc.string({ maxLength: 255 })).map((name) => {
    const bytes = Buffer.from(name, 'latin1').subarray(0, 255);
    return Buffer.concat([Buffer.of(bytes.length), bytes]);
  })),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 20 })),
);

const socks5Stream = fc
  .record({
    greetingVersion: fc.oneof({ weight: 8, arbitrary: fc.constant(5) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    methods,
    declaredMethods: fc.option(fc.integer({ min: 0, max: 255 }), { freq: 6 }),
    requestVersion: fc.oneof({ weight: 8, arbitrary: fc.constant(5) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    command: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 255 }) }),
    reserved: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
    address,
    port: fc.integer({ min: 0, max: 0xffff }),
    after: fc.uint8Array({ maxLength: 32 }),
  })
  .map(({ greetingVersion, methods: offered, declaredMethods, requestVersion, command, reserved, address: [type, addressBytes], port, after }) => {
    const portBytes = Buffer.alloc(2);
    portBytes.writeUInt16BE(port);
    return Buffer.concat([
      Buffer.of(greetingVersion, declaredMethods ?? offered.length),
      offered,
      Buffer.of(requestVersion, command, reserved, type),
      addressBytes,
      portBytes,
      after,
    ]);
  });

const arbitrary = fc
  .record({
    bytes: socks5Stream,
    mutations: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 3, arbitrary: fc.array(byteMutationArbitrary, { minLength: 1, maxLength: 4 }) }),
    split: chunkSplitArbitrary,
  })
  // The first byte picks the protocol: keep the stream SOCKS5 for this target.
  .map(({ bytes, mutations, split }) => ({ bytes: Buffer.concat([Buffer.of(5), applyByteMutations(bytes, mutations).subarray(1)]), split }));

export function proxyStreamToJson(input: ProxyStreamInput): { bytes: string; cuts: number[]; byteByByte: boolean } {
  return { bytes: toBase64(input.bytes), ...toChunkSplitJson(input.split) };
}

export function proxyStreamFromJson(json: unknown): ProxyStreamInput {
  const fields = jsonObject(json, 'proxy stream input');
  return { bytes: fromBase64(fields.bytes, 'bytes'), split: chunkSplitFromJson(fields) };
}

export function checkProxyStream(input: ProxyStreamInput): void {
  driveProxyConnection(splitChunks(input.bytes, input.split));
}

function seeds(): SeedInput<ProxyStreamInput>[] {
  const whole: ChunkSplit = { cuts: [], byteByByte: false };
  const seed = (name: string, note: string, bytes: Buffer, split = whole): SeedInput<ProxyStreamInput> => ({ name, note, input: { bytes, split } });
  const name = Buffer.from('api.mesh');
  const connect = Buffer.concat([Buffer.of(5, 1, 0, 3, name.length), name, Buffer.of(0x01, 0xbb)]);
  const all255 = Buffer.concat([Buffer.of(5, 255), Buffer.from(new Uint8Array(255).map((_, index) => (index + 1) % 256))]);
  return [
    seed('greeting-255-methods', 'a greeting offering 255 methods, no authentication (0) last, then CONNECT api.mesh:443 with TLS bytes after', Buffer.concat([all255, connect, Buffer.of(0x16, 3, 1)])),
    seed('greeting-255-methods-byte-by-byte', 'the same fed one byte at a time', Buffer.concat([all255, connect]), { cuts: [], byteByByte: true }),
    seed('greeting-no-acceptable', 'a greeting offering only username/password (2)', Buffer.of(5, 1, 2)),
    seed('greeting-zero-methods', 'a greeting offering no method at all', Buffer.of(5, 0)),
    seed('domain-255', 'CONNECT to a 255-byte name: the largest request (262 bytes)', Buffer.concat([Buffer.of(5, 1, 0, 5, 1, 0, 3, 255), Buffer.alloc(255, 0x61), Buffer.of(0, 80)])),
    seed('domain-empty', 'CONNECT to an empty name', Buffer.of(5, 1, 0, 5, 1, 0, 3, 0, 0, 80)),
    seed('ipv6-target', 'CONNECT to [::1]:80: not a mesh name', Buffer.concat([Buffer.of(5, 1, 0, 5, 1, 0, 4), Buffer.alloc(15), Buffer.of(1, 0, 80)])),
    seed('udp-associate', 'the UDP ASSOCIATE command (3)', Buffer.of(5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 80)),
    seed('address-type-2', 'address type 2, which RFC 1928 does not define', Buffer.of(5, 1, 0, 5, 1, 0, 2, 1, 2, 3, 4, 0, 80)),
    seed('request-version-4', 'a SOCKS5 greeting followed by a request with version 4', Buffer.of(5, 1, 0, 4, 1, 0, 1, 127, 0, 0, 1, 0, 80)),
    seed('socks4', 'a SOCKS4 request: refused before any handshake', Buffer.of(4, 1, 0, 80, 127, 0, 0, 1, 0)),
    seed('split-in-port', 'CONNECT split between the two port bytes', Buffer.concat([Buffer.of(5, 1, 0), connect]), { cuts: [3 + connect.length - 1], byteByByte: false }),
  ];
}

export const socks5HandshakeTarget = defineTarget<ProxyStreamInput>({
  name: 'socks5-handshake',
  summary: 'the proxy port fed mutated SOCKS5 greetings and requests in random chunk splits',
  arbitrary: oneByOne(arbitrary),
  check: checkProxyStream,
  toJson: proxyStreamToJson,
  fromJson: proxyStreamFromJson,
  seeds,
});
