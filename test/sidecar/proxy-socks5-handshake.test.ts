// The SOCKS5 handshake as a pure state machine: fed whole, byte by byte, and with garbage.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HandshakeStep, ProxyErrorCode } from '../../sidecar/forward/proxy/index.js';
import { MAX_SOCKS5_REQUEST_BYTES, ProxyError, Socks5Handshake, Socks5Reply } from '../../sidecar/forward/proxy/index.js';
import { proxyErrorCodeOf } from '../support/proxy-errors.js';

const GREETING = Buffer.from([0x05, 0x01, 0x00]);
const METHOD_SELECTED = Buffer.from([0x05, 0x00]);

function connectRequest(name: string, port: number): Buffer {
  const nameBytes = Buffer.from(name, 'latin1');
  const portBytes = Buffer.alloc(2);
  portBytes.writeUInt16BE(port);
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x03, nameBytes.length]), nameBytes, portBytes]);
}

/** Feeds `bytes` one at a time; returns every reply written and the final step. */
function feedByteByByte(handshake: Socks5Handshake, bytes: Buffer): { replies: Buffer[]; last: HandshakeStep } {
  const replies: Buffer[] = [];
  let last: HandshakeStep = {};
  for (let index = 0; index < bytes.length && last.request === undefined; index += 1) {
    last = handshake.push(bytes.subarray(index, index + 1));
    if (last.reply !== undefined) replies.push(last.reply);
  }
  return { replies, last };
}

describe('SOCKS5 handshake', () => {
  it('answers the greeting, then parses a CONNECT to a domain, fed byte by byte', () => {
    const handshake = new Socks5Handshake();
    const optimistic = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    const { replies, last } = feedByteByByte(handshake, Buffer.concat([GREETING, connectRequest('api.mesh', 8080)]));
    assert.deepEqual(replies, [METHOD_SELECTED]);
    assert.deepEqual(last.request?.target, { host: 'api.mesh', port: 8080, addressType: 'domain' });
    assert.equal(last.request?.initialBytes.length, 0);
    // And in one piece with bytes after the request: they come out as the initial bytes, in order.
    const whole = new Socks5Handshake().push(Buffer.concat([GREETING, connectRequest('api.mesh', 80), optimistic]));
    assert.deepEqual(whole.reply, METHOD_SELECTED);
    assert.deepEqual(whole.request?.initialBytes, optimistic);
  });

  it('parses IPv4 and IPv6 destinations (which the proxy then refuses as not mesh names)', () => {
    const ipv4 = new Socks5Handshake().push(Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, 0x00, 0x50]));
    assert.deepEqual(ipv4.request?.target, { host: '127.0.0.1', port: 80, addressType: 'ipv4' });
    const ipv6Address = Buffer.alloc(16);
    ipv6Address[15] = 1;
    const ipv6 = new Socks5Handshake().push(Buffer.concat([GREETING, Buffer.from([0x05, 0x01, 0x00, 0x04]), ipv6Address, Buffer.from([0x01, 0xbb])]));
    assert.deepEqual(ipv6.request?.target, { host: '0:0:0:0:0:0:0:1', port: 443, addressType: 'ipv6' });
  });

  it('refuses clients that insist on authentication with "no acceptable method"', () => {
    const handshake = new Socks5Handshake();
    const code = proxyErrorCodeOf(() => handshake.push(Buffer.from([0x05, 0x01, 0x02])));
    assert.equal(code, 'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD');
    assert.deepEqual(handshake.failureReply(new ProxyError(code, '')), Buffer.from([0x05, 0xff]));
    assert.equal(proxyErrorCodeOf(() => new Socks5Handshake().push(Buffer.from([0x05, 0x00]))), 'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD');
  });

  it('refuses BIND and UDP ASSOCIATE, unknown address types and empty names, with the matching reply code', () => {
    const cases: [Buffer, ProxyErrorCode, number][] = [
      [Buffer.from([0x05, 0x02, 0x00, 0x03, 0x01]), 'TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND', Socks5Reply.COMMAND_NOT_SUPPORTED],
      [Buffer.from([0x05, 0x03, 0x00, 0x01, 0x00]), 'TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND', Socks5Reply.COMMAND_NOT_SUPPORTED],
      [Buffer.from([0x05, 0x01, 0x00, 0x09, 0x00]), 'TRELLIS_ERR_PROXY_UNSUPPORTED_ADDRESS_TYPE', Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED],
      [Buffer.from([0x05, 0x01, 0x00, 0x03, 0x00]), 'TRELLIS_ERR_PROXY_BAD_REQUEST', Socks5Reply.GENERAL_FAILURE],
      [Buffer.from([0x04, 0x01, 0x00, 0x03, 0x01]), 'TRELLIS_ERR_PROXY_BAD_REQUEST', Socks5Reply.GENERAL_FAILURE],
    ];
    for (const [request, expectedCode, replyCode] of cases) {
      const handshake = new Socks5Handshake();
      handshake.push(GREETING);
      const code = proxyErrorCodeOf(() => feedByteByByte(handshake, request));
      assert.equal(code, expectedCode, `request ${request.toString('hex')}`);
      assert.equal(handshake.failureReply(new ProxyError(code, ''))?.[1], replyCode);
    }
  });

  it('maps refusals after the request to RFC 1928 reply codes', () => {
    const handshake = new Socks5Handshake();
    handshake.push(Buffer.concat([GREETING, connectRequest('example.com', 80)]));
    assert.equal(handshake.failureReply(new ProxyError('TRELLIS_ERR_PROXY_NOT_MESH', ''))?.[1], Socks5Reply.NOT_ALLOWED_BY_RULESET);
    assert.equal(handshake.failureReply(new ProxyError('TRELLIS_ERR_PROXY_NO_ROUTE', ''))?.[1], Socks5Reply.HOST_UNREACHABLE);
    assert.deepEqual(handshake.successReply(), Buffer.from([0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
  });

  it('never crashes nor holds more than one message on garbage split anywhere', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.array(fc.nat({ max: 600 }), { maxLength: 8 }), (bytes, cuts) => {
        const input = Buffer.concat([Buffer.from([0x05]), Buffer.from(bytes)]);
        const points = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((a, b) => a - b);
        const handshake = new Socks5Handshake();
        let previous = 0;
        try {
          for (const point of [...points, input.length]) {
            const step = handshake.push(input.subarray(previous, point));
            previous = point;
            if (step.request !== undefined) return;
            assert.ok(handshake.bufferedBytes < MAX_SOCKS5_REQUEST_BYTES, `holds ${handshake.bufferedBytes} bytes`);
          }
        } catch (error) {
          assert.ok(error instanceof ProxyError, `only ProxyError may escape, got ${String(error)}`);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
