// The proxy port over real sockets, with a fake forwarder that joins each connection to a local echo app.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ForwardConnectionOptions } from '../../sidecar/forward/outbound.js';
import type { ConnectionForwarder, ProxyListener } from '../../sidecar/forward/proxy/index.js';
import { startProxyListener } from '../../sidecar/forward/proxy/index.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startEchoApp } from '../support/apps.js';

const HANDSHAKE_TIMEOUT_MS = 300;

/** Sends `service` "up" to the echo app as the outbound path would; "down" has no route. */
class EchoForwarder implements ConnectionForwarder {
  readonly calls: { service: string; key: string }[] = [];
  readonly #echoPort: number;

  constructor(echoPort: number) {
    this.#echoPort = echoPort;
  }

  forwardConnection(service: string, socket: net.Socket, options: ForwardConnectionOptions): void {
    this.calls.push({ service, key: options.key });
    if (service !== 'up') {
      options.onNoRoute?.(new Error(`service "${service}" has no healthy endpoint`));
      return;
    }
    const app = net.connect({ port: this.#echoPort, host: '127.0.0.1', allowHalfOpen: true }, () => {
      options.onOpen?.();
      if (options.initialBytes !== undefined) app.write(options.initialBytes);
      socket.pipe(app);
      app.pipe(socket);
    });
  }
}

/** Reads exactly `count` bytes. */
async function readBytes(socket: net.Socket, count: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < count) {
    const chunk = socket.read(Math.min(count - total, socket.readableLength || 1)) as Buffer | null;
    if (chunk === null) {
      await Promise.race([once(socket, 'readable'), once(socket, 'close').then(() => Promise.reject(new Error(`closed after ${total} of ${count} bytes`)))]);
      continue;
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  return Buffer.concat(chunks);
}

function socks5Connect(name: string): Buffer {
  return Buffer.concat([Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x03, name.length]), Buffer.from(name), Buffer.from([0x00, 0x50])]);
}

describe('proxy listener', () => {
  let echo: TestApp;
  let forwarder: EchoForwarder;
  let proxy: ProxyListener;
  let port: number;
  const logLines: string[] = [];
  const clients: net.Socket[] = [];

  /** A client socket, destroyed after the suite: clients here are half-open and would keep the process alive. */
  async function client(): Promise<net.Socket> {
    const socket = await connect(port);
    clients.push(socket);
    return socket;
  }

  before(async () => {
    echo = await startEchoApp();
    forwarder = new EchoForwarder(echo.port);
    const logger = pino({ level: 'info' }, { write: (line: string) => logLines.push(line) });
    proxy = await startProxyListener({ listen: { host: '127.0.0.1', port: 0 }, forwarder, logger, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS });
    port = Number(proxy.address.split(':')[1]);
  });

  after(async () => {
    for (const socket of clients) socket.destroy();
    await proxy?.close();
    await echo?.close();
  });

  it('SOCKS5: bytes sent with the handshake reach the service first and in order; the ring key is the source address', async () => {
    const socket = await client();
    const source = `127.0.0.1:${socket.localPort}`;
    socket.write(Buffer.concat([socks5Connect('up.mesh'), Buffer.from('first,')]));
    assert.deepEqual(await readBytes(socket, 2), Buffer.from([0x05, 0x00]));
    assert.deepEqual(await readBytes(socket, 10), Buffer.from([0x05, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
    const echoed = readAll(socket);
    socket.end('second');
    assert.equal((await echoed).toString(), 'first,second');
    assert.deepEqual(forwarder.calls.at(-1), { service: 'up', key: source });
  });

  it('HTTP CONNECT: 200, then a tunnel carrying the bytes that came with the request', async () => {
    const socket = await client();
    socket.write('CONNECT up.mesh:443 HTTP/1.1\r\nHost: up.mesh:443\r\n\r\nearly,');
    const established = 'HTTP/1.1 200 Connection established\r\n\r\n';
    assert.equal((await readBytes(socket, established.length)).toString(), established);
    const echoed = readAll(socket);
    socket.end('late');
    assert.equal((await echoed).toString(), 'early,late');
  });

  it('refuses a name outside the mesh in the client protocol, logs it, and never forwards it', async () => {
    const callsBefore = forwarder.calls.length;
    const socks = await client();
    const socksReply = readAll(socks);
    socks.write(socks5Connect('example.com'));
    assert.deepEqual((await socksReply).subarray(2, 4), Buffer.from([0x05, 0x02]), 'SOCKS reply 2: not allowed by ruleset');
    const http = await client();
    const httpReply = readAll(http);
    http.write('GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n');
    const text = (await httpReply).toString();
    assert.match(text, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.match(text, /"127\.0\.0\.1" is not a mesh name/);
    assert.equal(forwarder.calls.length, callsBefore);
    assert.equal(logLines.filter((line) => line.includes('proxy refused a destination outside the mesh')).length, 2);
  });

  it('answers 502 when the service has no route, and SOCKS4 clients with a rejection', async () => {
    const http = await client();
    const reply = readAll(http);
    http.write('GET http://down.mesh/x HTTP/1.1\r\n\r\n');
    assert.match((await reply).toString(), /^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*no route to service "down"/);
    const socks4 = await client();
    const rejected = readAll(socks4);
    socks4.write(Buffer.from([0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0x00]));
    assert.deepEqual(await rejected, Buffer.from([0x00, 0x5b, 0, 0, 0, 0, 0, 0]));
  });

  it('closes a client that does not finish its handshake in time, with 408 for HTTP', async () => {
    const http = await client();
    const reply = readAll(http);
    http.write('CONNECT up.mesh:80 HTTP/1.1\r\n');
    assert.match((await reply).toString(), /^HTTP\/1\.1 408 Request Timeout\r\n/);
    const socks = await client();
    const closed = readAll(socks);
    socks.write(Buffer.from([0x05, 0x01]));
    assert.equal((await closed).length, 0, 'an unfinished SOCKS5 greeting has no reply to get');
  });

  it('answers garbage with 400 and an oversized head with 431, then closes', async () => {
    const garbage = await client();
    const reply = readAll(garbage);
    garbage.write('\x00\x01\x02 nonsense\r\n\r\n');
    assert.match((await reply).toString(), /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*malformed HTTP request line/);
    const big = await client();
    const bigReply = readAll(big);
    big.write(`GET http://up.mesh/ HTTP/1.1\r\nX: ${'a'.repeat(10_000)}`);
    assert.match((await bigReply).toString(), /^HTTP\/1\.1 431 /);
  });
});
