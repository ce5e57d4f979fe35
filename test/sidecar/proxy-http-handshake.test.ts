// The HTTP proxy handshake (CONNECT and absolute-form requests) and the mesh-name check.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { HandshakeStep, ProxyErrorCode } from '../../sidecar/forward/proxy/index.js';
import { HttpProxyHandshake, MAX_HTTP_HEAD_BYTES, meshServiceOf, ProxyError } from '../../sidecar/forward/proxy/index.js';
import { proxyErrorCodeOf } from '../support/proxy-errors.js';

function pushByteByByte(handshake: HttpProxyHandshake, bytes: Buffer): HandshakeStep {
  let last: HandshakeStep = {};
  for (let index = 0; index < bytes.length && last.request === undefined; index += 1) last = handshake.push(bytes.subarray(index, index + 1));
  return last;
}

function parse(head: string): HandshakeStep {
  return new HttpProxyHandshake().push(Buffer.from(head, 'latin1'));
}

describe('HTTP proxy handshake', () => {
  it('parses CONNECT fed byte by byte and keeps the bytes after the head, in order', () => {
    const tls = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]);
    const handshake = new HttpProxyHandshake();
    const step = pushByteByByte(handshake, Buffer.concat([Buffer.from('CONNECT api.mesh:443 HTTP/1.1\r\nHost: api.mesh:443\r\n\r\n'), tls]));
    assert.deepEqual(step.request?.target, { host: 'api.mesh', port: 443, addressType: 'domain' });
    assert.equal(handshake.successReply()?.toString(), 'HTTP/1.1 200 Connection established\r\n\r\n');
    const whole = parse('CONNECT [::1]:8443 HTTP/1.1\r\n\r\nhello');
    assert.deepEqual(whole.request?.target, { host: '::1', port: 8443, addressType: 'ipv6' });
    assert.equal(whole.request?.initialBytes.toString(), 'hello');
  });

  it('rewrites an absolute-form request to origin form: Host from the URL, hop-by-hop headers gone, one request per connection', () => {
    const head =
      'POST http://API.mesh:8080/items?id=7 HTTP/1.1\r\nHost: elsewhere\r\nProxy-Connection: keep-alive\r\n' +
      'Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\nProxy-Authorization: Basic eA==\r\nContent-Length: 5\r\nX-Trace: abc\r\n\r\nhello';
    const rewritten = 'POST /items?id=7 HTTP/1.1\r\nHost: API.mesh:8080\r\nContent-Length: 5\r\nX-Trace: abc\r\nConnection: close\r\n\r\n';
    // Byte by byte, the handshake completes on the head's last byte; the body is still to come.
    const step = pushByteByByte(new HttpProxyHandshake(), Buffer.from(head));
    assert.deepEqual(step.request?.target, { host: 'API.mesh', port: 8080, addressType: 'domain' });
    assert.equal(step.request?.initialBytes.toString(), rewritten);
    // In one piece, the body follows the rewritten head.
    assert.equal(parse(head).request?.initialBytes.toString(), `${rewritten}hello`);
    const plain = new HttpProxyHandshake();
    const whole = plain.push(Buffer.from('GET http://api.mesh HTTP/1.0\n\n'));
    assert.equal(plain.successReply(), undefined, 'a plain request gets the app\'s answer only');
    assert.equal(whole.request?.initialBytes.toString(), 'GET / HTTP/1.0\r\nHost: api.mesh\r\nConnection: close\r\n\r\n');
    assert.equal(whole.request?.target.port, 80);
    assert.equal(parse('GET http://api.mesh?q=1 HTTP/1.1\r\n\r\n').request?.initialBytes.toString().split('\r\n')[0], 'GET /?q=1 HTTP/1.1');
  });

  it('refuses what is not a proxy request with 400 and a message naming the problem', () => {
    const cases: [string, ProxyErrorCode, RegExp][] = [
      ['GET /path HTTP/1.1\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /not a proxy request/],
      ['GET https://api.mesh/ HTTP/1.1\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /use CONNECT/],
      ['GET http://user@api.mesh/ HTTP/1.1\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /not a valid host/],
      ['CONNECT api.mesh HTTP/1.1\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /has no port/],
      ['CONNECT api.mesh:99999 HTTP/1.1\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /not a valid host/],
      ['GET http://api.mesh/ HTTP/1.1\r\nBad Header: x\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /malformed HTTP header line/],
      ['GET http://api.mesh/ HTTP/1.1\r\nA: b\r\n folded\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /folded/],
      ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 'TRELLIS_ERR_PROXY_BAD_REQUEST', /malformed HTTP request line/],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION', /HTTP\/2\.0 is not supported/],
      [`GET http://api.mesh/ HTTP/1.1\r\n${'A: b\r\n'.repeat(101)}\r\n`, 'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE', /101 header fields/],
    ];
    for (const [head, expectedCode, message] of cases) {
      const handshake = new HttpProxyHandshake();
      let caught: ProxyError | undefined;
      try {
        handshake.push(Buffer.from(head, 'latin1'));
      } catch (error) {
        caught = error as ProxyError;
      }
      assert.ok(caught instanceof ProxyError, `no error for ${JSON.stringify(head)}`);
      assert.equal(caught.code, expectedCode, JSON.stringify(head));
      assert.match(caught.message, message);
      const reply = handshake.failureReply(caught).toString();
      assert.match(reply, expectedCode === 'TRELLIS_ERR_PROXY_BAD_REQUEST' ? /^HTTP\/1\.1 400 / : /^HTTP\/1\.1 (505|431) /);
      assert.ok(reply.endsWith(`${caught.message}\n`), 'the body names the problem');
    }
  });

  it('answers a refused name with 403 and a text body', () => {
    const error = proxyErrorCodeOf(() => meshServiceOf('example.com'));
    assert.equal(error, 'TRELLIS_ERR_PROXY_NOT_MESH');
    const reply = new HttpProxyHandshake().failureReply(new ProxyError('TRELLIS_ERR_PROXY_NOT_MESH', '"example.com" is not a mesh name')).toString();
    assert.match(reply, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(reply, /Content-Type: text\/plain/);
    assert.match(reply, /\r\n\r\n"example\.com" is not a mesh name\n$/);
  });

  it('stops at the head size limit, however the bytes arrive, holding no more than the limit', () => {
    const oversized = Buffer.from(`GET http://api.mesh/ HTTP/1.1\r\nX-Big: ${'a'.repeat(MAX_HTTP_HEAD_BYTES)}\r\n\r\n`);
    const byteByByte = new HttpProxyHandshake();
    assert.equal(proxyErrorCodeOf(() => pushByteByByte(byteByByte, oversized)), 'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE');
    assert.equal(byteByByte.bufferedBytes, MAX_HTTP_HEAD_BYTES);
    assert.equal(proxyErrorCodeOf(() => new HttpProxyHandshake().push(oversized)), 'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE');
    // A head of exactly the limit passes; one byte more does not.
    const prefix = 'GET http://api.mesh/ HTTP/1.1\r\nX-Big: ';
    const exact = (size: number): string => `${prefix}${'a'.repeat(size - prefix.length - 4)}\r\n\r\n`;
    assert.equal(exact(MAX_HTTP_HEAD_BYTES).length, MAX_HTTP_HEAD_BYTES);
    assert.ok(parse(exact(MAX_HTTP_HEAD_BYTES)).request !== undefined);
    assert.equal(proxyErrorCodeOf(() => parse(exact(MAX_HTTP_HEAD_BYTES + 1))), 'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE');
  });

  it('never crashes nor holds more than the limit on garbage split anywhere', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 2000 }).map((bytes) => Buffer.from(bytes)),
          fc.array(fc.constantFrom('GET ', 'CONNECT ', 'http://', 'api.mesh', ':80', '/', ' HTTP/1.1', '\r\n', '\n', ': ', 'Host', ' ', '\t', '[', ']', '@'), { maxLength: 40 }).map((parts) => Buffer.from(parts.join(''))),
        ),
        fc.array(fc.nat({ max: 2000 }), { maxLength: 8 }),
        (input, cuts) => {
          const points = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((a, b) => a - b);
          const handshake = new HttpProxyHandshake();
          let previous = 0;
          try {
            for (const point of [...points, input.length]) {
              const step = handshake.push(input.subarray(previous, point));
              previous = point;
              if (step.request !== undefined) return;
              assert.ok(handshake.bufferedBytes <= MAX_HTTP_HEAD_BYTES);
            }
          } catch (error) {
            assert.ok(error instanceof ProxyError, `only ProxyError may escape, got ${String(error)}`);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('mesh names', () => {
  it('takes <service>.mesh in any case, with an optional trailing dot', () => {
    assert.equal(meshServiceOf('api.mesh'), 'api');
    assert.equal(meshServiceOf('API.Mesh'), 'api');
    assert.equal(meshServiceOf('user-db.mesh.'), 'user-db');
  });

  it('refuses every other name before anything is dialled', () => {
    for (const name of ['example.com', '127.0.0.1', '::1', 'localhost', 'mesh', '.mesh', 'a.b.mesh', '-api.mesh', 'api_x.mesh', 'api.mesh.example.com', 'api.mesh..', '']) {
      assert.equal(proxyErrorCodeOf(() => meshServiceOf(name)), 'TRELLIS_ERR_PROXY_NOT_MESH', name);
    }
    assert.match(proxyErrorCodeOf(() => meshServiceOf('x'.repeat(5000))) ?? '', /NOT_MESH/);
  });
});
