/**
 * Target `http-handshake`: HTTP proxy request heads built from the grammar (CONNECT and
 * absolute-form requests, any authority, version, header fields with runs of whitespace and
 * control characters, either line ending), mutated as text and as bytes, then fed to the
 * proxy's connection logic in random chunk splits.
 *
 * Properties: as `socks5-handshake` (typed refusals, bounded buffering, tunnel bytes passed
 * on as sent), and no input may take longer than the slow-input limit: the head is parsed on
 * the event loop, so a slow parse stalls every connection of the sidecar.
 */
import fc from 'fast-check';
import { applyByteMutations, byteMutationArbitrary, chunkSplitArbitrary } from '../bytes.js';
import type { ChunkSplit } from '../bytes.js';
import { defineTarget, oneByOne } from '../fuzz-target.js';
import type { SeedInput } from '../fuzz-target.js';
import { mutateText, textMutations } from '../text.js';
import { checkProxyStream, proxyStreamFromJson, proxyStreamToJson } from './socks5-handshake.js';
import type { ProxyStreamInput } from './socks5-handshake.js';

const host = fc.oneof(
  fc.stringMatching(/^[a-z0-9-]{1,20}\.mesh$/),
  fc.constantFrom('api.mesh', 'API.MESH.', 'a.b.mesh', '[::1]', '[fe80::1%eth0]', '127.0.0.1', 'user@api.mesh', '', '[', 'mesh'),
  fc.domain(),
);
const port = fc.option(fc.oneof(fc.integer({ min: 0, max: 65535 }).map(String), fc.constantFrom('', '99999', '0443', '65536', '-1')), { freq: 4 });
const authority = fc.tuple(host, port).map(([name, portText]) => (portText === null ? name : `${name}:${portText}`));
const requestTarget = fc.oneof(
  authority,
  fc.tuple(fc.constantFrom('http', 'HTTP', 'https', 'ftp', 'h'), authority, fc.constantFrom('', '/', '/a?b=c', '?q', '#f', '/%00')).map(([scheme, auth, path]) => `${scheme}://${auth}${path}`),
  fc.constantFrom('/', '*', '/index.html'),
);
const method = fc.oneof({ weight: 4, arbitrary: fc.constantFrom('CONNECT', 'GET', 'POST') }, { weight: 1, arbitrary: fc.constantFrom('connect', 'PRI', 'G(T', '') }, { weight: 1, arbitrary: fc.stringMatching(/^[A-Z!#$%&'*+.^_`|~-]{1,12}$/) });
const version = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('HTTP/1.1', 'HTTP/1.0') }, { weight: 1, arbitrary: fc.constantFrom('HTTP/2.0', 'HTTP/0.9', 'HTTP/1.10', 'http/1.1', 'HTTP/1.1 ', '') });

/** Runs of spaces or tabs, short and long: field values are trimmed, and trimming can be slow. */
const whitespaceRun = fc.tuple(fc.constantFrom(' ', '\t', ' \t'), fc.oneof({ weight: 60, arbitrary: fc.integer({ min: 1, max: 40 }) }, { weight: 1, arbitrary: fc.integer({ min: 200, max: 2500 }) })).map(([unit, times]) => unit.repeat(times));
const valuePiece = fc.oneof(
  { weight: 4, arbitrary: fc.stringMatching(/^[\x21-\x7e]{1,20}$/) },
  { weight: 2, arbitrary: whitespaceRun },
  { weight: 1, arbitrary: fc.constantFrom('\0', '\r', '\x7f', '\xff', ',', 'close', 'keep-alive, upgrade', 'content-length') },
);
const fieldName = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('Host', 'Connection', 'Proxy-Connection', 'Content-Length', 'Upgrade', 'X-A', 'keep-alive') }, { weight: 1, arbitrary: fc.constantFrom('', 'Bad Name', 'X:Y', ' Folded') });
const field = fc.tuple(fieldName, fc.constantFrom(':', ': ', ' :', ':\t'), fc.array(valuePiece, { maxLength: 4 })).map(([name, colon, pieces]) => `${name}${colon}${pieces.join('')}`);
const lineEnd = fc.oneof({ weight: 6, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constant('\n') });

const head = fc
  .record({
    method,
    target: requestTarget,
    version,
    fields: fc.oneof({ weight: 8, arbitrary: fc.array(field, { maxLength: 8 }) }, { weight: 1, arbitrary: fc.constant(Array.from({ length: 101 }, (_, index) => `X-${index}: ${index}`)) }),
    lineEnd,
    finalEnd: fc.oneof({ weight: 8, arbitrary: lineEnd }, { weight: 1, arbitrary: fc.constantFrom('', '\r') }),
  })
  .map(({ method: verb, target, version: protocol, fields, lineEnd: end, finalEnd }) => [`${verb} ${target} ${protocol}`, ...fields].map((line) => line + end).join('') + finalEnd);

const arbitrary = fc
  .record({
    head,
    textMutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
    after: fc.uint8Array({ maxLength: 32 }),
    byteMutations: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(byteMutationArbitrary, { minLength: 1, maxLength: 3 }) }),
    split: chunkSplitArbitrary,
  })
  .map(({ head: text, textMutations: edits, after, byteMutations, split }): ProxyStreamInput => {
    const bytes = applyByteMutations(Buffer.concat([Buffer.from(mutateText(text, edits), 'latin1'), after]), byteMutations);
    // The first byte picks the protocol: 0x04 and 0x05 would make this SOCKS.
    if (bytes[0] === 0x04 || bytes[0] === 0x05) bytes[0] = 0x47;
    return { bytes, split };
  });

function seeds(): SeedInput<ProxyStreamInput>[] {
  const whole: ChunkSplit = { cuts: [], byteByByte: false };
  const seed = (name: string, note: string, text: string, split = whole): SeedInput<ProxyStreamInput> => ({ name, note, input: { bytes: Buffer.from(text, 'latin1'), split } });
  return [
    seed('connect-valid', 'CONNECT api.mesh:443 with a TLS ClientHello byte after the head', 'CONNECT api.mesh:443 HTTP/1.1\r\nHost: api.mesh:443\r\n\r\n\x16'),
    seed('connect-9k-head', 'a CONNECT head of 9 KiB (the limit is 8 KiB): HEAD_TOO_LARGE', `CONNECT api.mesh:443 HTTP/1.1\r\nX-Pad: ${'a'.repeat(9 * 1024)}\r\n\r\n`),
    seed('connect-head-8192', 'a head ending exactly at byte 8192, the blank line split over two chunks', (() => {
      const prefix = 'CONNECT api.mesh:443 HTTP/1.1\r\nX-Pad: ';
      return `${prefix}${'a'.repeat(8192 - prefix.length - 4)}\r\n\r\n`;
    })(), { cuts: [8190], byteByByte: false }),
    seed('connect-no-port', 'CONNECT without a port (RFC 9110 requires one)', 'CONNECT api.mesh HTTP/1.1\r\n\r\n'),
    seed('connect-port-99999', 'CONNECT to port 99999', 'CONNECT api.mesh:99999 HTTP/1.1\r\n\r\n'),
    seed('connect-userinfo', 'CONNECT with user info in the authority', 'CONNECT user@api.mesh:443 HTTP/1.1\r\n\r\n'),
    seed('absolute-form', 'an absolute-form GET with hop-by-hop headers named by Connection', 'GET http://api.mesh:8080/x?y HTTP/1.1\r\nConnection: X-Hop, content-length\r\nX-Hop: 1\r\nContent-Length: 0\r\n\r\n'),
    seed('http-2', 'HTTP/2.0 in the request line: UNSUPPORTED_VERSION', 'CONNECT api.mesh:443 HTTP/2.0\r\n\r\n'),
    seed('bare-lf', 'bare LF line endings, which RFC 9112 tolerates', 'CONNECT api.mesh:443 HTTP/1.1\nHost: x\n\n'),
    seed('obs-fold', 'an obsolete folded header line', 'CONNECT api.mesh:443 HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n'),
    seed('101-fields', '101 header fields (the limit is 100)', `CONNECT api.mesh:443 HTTP/1.1\r\n${Array.from({ length: 101 }, (_, index) => `X-${index}: ${index}\r\n`).join('')}\r\n`),
    seed('not-mesh', 'CONNECT to a name outside the mesh', 'CONNECT example.com:443 HTTP/1.1\r\n\r\n'),
    seed('whitespace-then-nul-200', 'a field value of 200 spaces and a NUL: refused (at 2000 spaces the same line takes seconds)', `CONNECT api.mesh:443 HTTP/1.1\r\nX-A:${' '.repeat(200)}\0\r\n\r\n`),
  ];
}

export const httpHandshakeTarget = defineTarget<ProxyStreamInput>({
  name: 'http-handshake',
  summary: 'the proxy port fed mutated HTTP CONNECT and absolute-form heads in random chunk splits',
  arbitrary: oneByOne(arbitrary),
  check: checkProxyStream,
  toJson: proxyStreamToJson,
  fromJson: proxyStreamFromJson,
  seeds,
});
