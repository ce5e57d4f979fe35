// HTTP CONNECT against scripted proxies on loopback: what the connector sends, and every way a proxy can fail it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { ValidationError } from '../../proto/errors.js';
import { directConnector } from '../../sidecar/links/connector.js';
import { HttpConnectConnector, MAX_PROXY_RESPONSE_HEAD_BYTES, egressConnectorFromEnv, noProxyMatches, parseHttpProxyUrl } from '../../sidecar/links/http-connect-connector.js';
import { freeLoopbackPort } from '../support/ports.js';

const TARGET = { host: 'peer.example', port: 7443, timeoutMs: 5000 };
const CASE = { timeout: 10_000 };

/** A proxy that reads one request head, reports it, and answers with `answer` (or not at all). */
async function scriptedProxy(answer: ((socket: net.Socket) => void) | undefined): Promise<{ url: string; heads: string[]; close(): Promise<void> }> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      heads.push(head);
      answer?.(socket);
    });
    socket.on('error', () => undefined);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    heads,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('HttpConnectConnector', () => {
  const proxies: { close(): Promise<void> }[] = [];
  after(() => Promise.all(proxies.map((proxy) => proxy.close())));
  const proxy = async (answer: ((socket: net.Socket) => void) | undefined): Promise<{ url: string; heads: string[] }> => {
    const started = await scriptedProxy(answer);
    proxies.push(started);
    return started;
  };

  it('sends CONNECT with Host and Basic credentials, and keeps the bytes after the head', CASE, async () => {
    const { url, heads } = await proxy((socket) => socket.write('HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\nfirst bytes'));
    const withAuth = url.replace('http://', 'http://us%40er:p%3Ass@');
    const socket = await new HttpConnectConnector(withAuth).connect(TARGET);
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'first bytes');
    assert.equal(
      heads[0],
      `CONNECT peer.example:7443 HTTP/1.1\r\nHost: peer.example:7443\r\nProxy-Authorization: Basic ${Buffer.from('us@er:p:ss').toString('base64')}\r\n\r\n`,
    );
    socket.destroy();
  });

  it('refuses a non-2xx answer with TRELLIS_ERR_EGRESS_PROXY_REFUSED', CASE, async () => {
    const { url } = await proxy((socket) => socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n'));
    await assert.rejects(new HttpConnectConnector(url).connect(TARGET), { code: 'TRELLIS_ERR_EGRESS_PROXY_REFUSED' });
  });

  for (const [what, answer] of [
    ['an answer that is not HTTP', (socket: net.Socket) => socket.write('SSH-2.0-OpenSSH\r\n\r\n')],
    ['a head that never ends within the limit', (socket: net.Socket) => socket.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_PROXY_RESPONSE_HEAD_BYTES)}`)],
    ['a head that ends past the limit', (socket: net.Socket) => socket.write(`HTTP/1.1 200 OK\r\nX: ${'a'.repeat(MAX_PROXY_RESPONSE_HEAD_BYTES)}\r\n\r\n`)],
    ['a close before the head ends', (socket: net.Socket) => socket.end('HTTP/1.1 200 OK\r\n')],
  ] as const) {
    it(`fails ${what} with TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE`, CASE, async () => {
      const { url } = await proxy(answer);
      await assert.rejects(new HttpConnectConnector(url).connect(TARGET), { code: 'TRELLIS_ERR_EGRESS_PROXY_BAD_RESPONSE' });
    });
  }

  it('gives up on a silent proxy with TRELLIS_ERR_DIAL_TIMEOUT', CASE, async () => {
    const { url } = await proxy(undefined);
    await assert.rejects(new HttpConnectConnector(url).connect({ ...TARGET, timeoutMs: 100 }), { code: 'TRELLIS_ERR_DIAL_TIMEOUT' });
  });

  it('fails with TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE when nothing listens at the proxy', CASE, async () => {
    const url = `http://127.0.0.1:${await freeLoopbackPort()}`;
    await assert.rejects(new HttpConnectConnector(url).connect(TARGET), { code: 'TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE' });
  });
});

describe('egressConnectorFromEnv', () => {
  it('is direct without a flag or HTTPS_PROXY', () => {
    assert.equal(egressConnectorFromEnv(undefined, {}), directConnector);
    assert.equal(egressConnectorFromEnv('', { HTTPS_PROXY: ' ' }), directConnector);
  });

  it('uses the flag before HTTPS_PROXY, and https_proxy too', () => {
    assert.ok(egressConnectorFromEnv('http://127.0.0.1:3128', { HTTPS_PROXY: 'not a url' }) instanceof HttpConnectConnector);
    assert.ok(egressConnectorFromEnv(undefined, { https_proxy: 'http://proxy.corp:3128' }) instanceof HttpConnectConnector);
  });

  it('refuses a flag that is not http://HOST:PORT with TRELLIS_ERR_BAD_ADDRESS naming --egress-proxy', () => {
    for (const bad of ['127.0.0.1:3128', 'https://proxy:3128', 'http://proxy', 'http://proxy:0', 'http://proxy:3128/path', 'http://%zz@proxy:1']) {
      assert.throws(
        () => egressConnectorFromEnv(bad, {}),
        (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_BAD_ADDRESS' && error.message.includes('--egress-proxy'),
        bad,
      );
    }
    assert.throws(
      () => egressConnectorFromEnv(undefined, { HTTPS_PROXY: 'socks5://proxy:1080' }),
      (error: unknown) => error instanceof ValidationError && error.code === 'TRELLIS_ERR_BAD_ADDRESS' && error.message.includes('HTTPS_PROXY'),
    );
  });

  it('goes direct for NO_PROXY hosts, and through the proxy for the others', CASE, async () => {
    const peer = net.createServer((socket) => socket.end()).listen(0, '127.0.0.1');
    await once(peer, 'listening');
    const port = (peer.address() as AddressInfo).port;
    // The proxy's port is closed: a connection that reaches the peer did not go through it.
    const env = { HTTPS_PROXY: `http://127.0.0.1:${await freeLoopbackPort()}`, NO_PROXY: 'localhost, 127.0.0.1' };
    const direct = await egressConnectorFromEnv(undefined, env).connect({ host: '127.0.0.1', port, timeoutMs: 5000 });
    direct.destroy();
    await assert.rejects(egressConnectorFromEnv(undefined, { ...env, NO_PROXY: 'other.host' }).connect({ host: '127.0.0.1', port, timeoutMs: 5000 }), {
      code: 'TRELLIS_ERR_EGRESS_PROXY_UNREACHABLE',
    });
    peer.close();
  });

  it('matches NO_PROXY entries as exact hosts and as domain suffixes', () => {
    assert.equal(noProxyMatches('api.corp.example', 'corp.example'), true);
    assert.equal(noProxyMatches('api.corp.example', '.corp.example'), true);
    assert.equal(noProxyMatches('corp.example', '.corp.example'), true);
    assert.equal(noProxyMatches('evilcorp.example', 'corp.example'), false);
    assert.equal(noProxyMatches('API.Corp.Example', 'corp.example'), true);
    assert.equal(noProxyMatches('::1', '[::1]'), true);
    assert.equal(noProxyMatches('anything', '*'), true);
    assert.equal(noProxyMatches('peer', ' , '), false);
  });

  it('parses user and password from the proxy URL', () => {
    assert.deepEqual(parseHttpProxyUrl('http://u:p%40ss@[::1]:3128/', 'x'), { host: '::1', port: 3128, credentials: 'u:p@ss' });
  });
});
