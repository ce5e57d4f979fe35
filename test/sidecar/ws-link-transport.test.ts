// What is particular to WebSocket links: message framing of the byte stream, the HTTPS listener's limits.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import WebSocket, { WebSocketServer } from 'ws';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import type { LinkListener } from '../../sidecar/links/transport.js';
import { MAX_WS_LINK_MESSAGE_BYTES, MAX_WS_LINK_PAYLOAD_BYTES, WebSocketDuplex } from '../../sidecar/links/ws-duplex.js';
import { WsLinkTransport } from '../../sidecar/links/ws-transport.js';
import type { TestCa } from '../support/link-credentials.js';
import { createTestCa, credentialsFor } from '../support/link-credentials.js';

const API = { kind: 'service', service: 'api' } as const;
const CASE = { timeout: 20_000 };

/** A plain WebSocket server on loopback and a client wrapped as a WebSocketDuplex, with the server's end. */
async function duplexPair(): Promise<{ duplex: WebSocketDuplex; peer: WebSocket; peerSocket: net.Socket; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[WebSocket, { socket: net.Socket }]>;
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, { perMessageDeflate: false, maxPayload: MAX_WS_LINK_PAYLOAD_BYTES });
  await once(ws, 'open');
  const [peer, request] = await accepted;
  const duplex = new WebSocketDuplex(ws);
  duplex.on('error', () => undefined);
  return {
    duplex,
    peer,
    peerSocket: request.socket,
    close: async () => {
      duplex.destroy();
      peer.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe('WebSocketDuplex', () => {
  it('sends a corked batch of writes as one binary message', CASE, async () => {
    const pair = await duplexPair();
    const messages: Buffer[] = [];
    pair.peer.on('message', (data: Buffer, isBinary: boolean) => messages.push(isBinary ? data : Buffer.from('text')));
    pair.duplex.cork();
    for (let i = 0; i < 10; i++) pair.duplex.write(Buffer.from(`record-${i};`));
    pair.duplex.uncork();
    pair.duplex.write('last');
    await new Promise<void>((resolve) => pair.peer.on('message', () => messages.length === 2 && resolve()));
    assert.deepEqual(
      messages.map((message) => message.toString()),
      [Array.from({ length: 10 }, (_, i) => `record-${i};`).join(''), 'last'],
    );
    await pair.close();
  });

  it('splits a write above the message limit into messages the peer accepts', CASE, async () => {
    const pair = await duplexPair();
    const sizes: number[] = [];
    const total = 2 * MAX_WS_LINK_MESSAGE_BYTES + 5;
    const received = new Promise<void>((resolve) =>
      pair.peer.on('message', (data: Buffer) => {
        sizes.push(data.length);
        if (sizes.reduce((sum, size) => sum + size, 0) === total) resolve();
      }),
    );
    pair.duplex.write(Buffer.alloc(total, 7));
    await received;
    assert.deepEqual(sizes, [MAX_WS_LINK_MESSAGE_BYTES, MAX_WS_LINK_MESSAGE_BYTES, 5]);
    await pair.close();
  });

  it('holds writes in the stream, not in ws, while the peer does not read', CASE, async () => {
    const pair = await duplexPair();
    pair.peer.pause();
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < 64; i++) pair.duplex.write(chunk);
    // One turn of the event loop lets ws take whatever the stream hands it: an adapter that did
    // not wait for each message's socket write would have moved all 64 MiB into ws by now.
    await new Promise((resolve) => setImmediate(resolve));
    // At most one message: its payload and a client frame's header (2 + 8 length + 4 mask bytes).
    assert.ok(pair.duplex.bufferedAmount <= chunk.length + 14, `ws holds ${pair.duplex.bufferedAmount} bytes`);
    assert.ok(pair.duplex.writableLength >= 32 * chunk.length, `the stream holds only ${pair.duplex.writableLength} bytes`);
    const drained = once(pair.duplex, 'drain');
    pair.peer.resume();
    await drained;
    await pair.close();
  });

  it('ends with TRELLIS_ERR_WS_TEXT_MESSAGE when the peer sends text, closing with 1003', CASE, async () => {
    const pair = await duplexPair();
    const closed = once(pair.peer, 'close');
    const failed = once(pair.duplex, 'error');
    pair.peer.send('hello');
    assert.equal(((await failed)[0] as { code: string }).code, 'TRELLIS_ERR_WS_TEXT_MESSAGE');
    assert.equal((await closed)[0], 1003);
    await pair.close();
  });

  it('ends with TRELLIS_ERR_WS_MESSAGE_TOO_LARGE when a message passes the payload limit', CASE, async () => {
    const pair = await duplexPair();
    const failed = once(pair.duplex, 'error');
    pair.peer.send(Buffer.alloc(MAX_WS_LINK_PAYLOAD_BYTES + 1));
    assert.equal(((await failed)[0] as { code: string }).code, 'TRELLIS_ERR_WS_MESSAGE_TOO_LARGE');
    await pair.close();
  });

  it('ends with TRELLIS_ERR_WS_PROTOCOL on a frame WebSocket does not define', CASE, async () => {
    const pair = await duplexPair();
    const failed = once(pair.duplex, 'error');
    // FIN + reserved opcode 3, empty payload: written under ws, straight to the socket.
    pair.peerSocket.write(Buffer.from([0x83, 0x00]));
    assert.equal(((await failed)[0] as { code: string }).code, 'TRELLIS_ERR_WS_PROTOCOL');
    await pair.close();
  });

  it('delivers what the peer sent before its Close, then ends', CASE, async () => {
    const pair = await duplexPair();
    pair.peer.send(Buffer.from('bye'));
    pair.peer.close(1000);
    const chunks: Buffer[] = [];
    pair.duplex.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(pair.duplex, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'bye');
    await pair.close();
  });
});

describe('WsLinkTransport', () => {
  let mesh: TestCa;
  let foreign: TestCa;
  let api: Credentials;
  let caller: Credentials;
  let listener: LinkListener;

  before(async () => {
    [mesh, foreign] = await Promise.all([createTestCa('links.test'), createTestCa('links.test')]);
    [api, caller] = await Promise.all([credentialsFor(mesh.ca, 'api'), credentialsFor(mesh.ca, 'caller')]);
    listener = await new WsLinkTransport(api, { acceptTimeoutMs: 300 }).listen(parseLinkUrl('wss://127.0.0.1:0/links'), (link) => link.socket.destroy());
  });

  after(async () => {
    await listener?.close();
    await Promise.all([mesh?.remove(), foreign?.remove()]);
  });

  const portOf = (url: string): number => parseLinkUrl(url).port;

  it('answers 404 to a request for another path, and refuses an upgrade there', CASE, async () => {
    const request = https.get({ host: '127.0.0.1', port: portOf(listener.url), path: '/elsewhere', rejectUnauthorized: false });
    const [response] = (await once(request, 'response')) as [{ statusCode: number; resume(): void }];
    response.resume();
    assert.equal(response.statusCode, 404);
    await assert.rejects(new WsLinkTransport(caller).dial({ address: `wss://127.0.0.1:${portOf(listener.url)}/elsewhere`, peer: API }), {
      code: 'TRELLIS_ERR_WS_UPGRADE_REFUSED',
    });
  });

  it('closes a connection that never finishes its outer TLS handshake', CASE, async () => {
    const socket = net.connect({ host: '127.0.0.1', port: portOf(listener.url) });
    await once(socket, 'close');
  });

  it('closes a connection that finishes TLS but never upgrades', CASE, async () => {
    const socket = tls.connect({ host: '127.0.0.1', port: portOf(listener.url), rejectUnauthorized: false });
    socket.on('error', () => undefined);
    await once(socket, 'secureConnect');
    socket.write('GET /links HTTP/1.1\r\nHost: x\r\n');
    await once(socket, 'close');
  });

  it('gives up a dial with TRELLIS_ERR_DIAL_TIMEOUT when the server never answers', CASE, async () => {
    const silent = net.createServer(() => undefined).listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const address = `wss://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    await assert.rejects(new WsLinkTransport(caller, { dialTimeoutMs: 200 }).dial({ address, peer: API }), { code: 'TRELLIS_ERR_DIAL_TIMEOUT' });
    silent.close();
  });

  it('fails with TRELLIS_ERR_WS_HANDSHAKE when the outer certificate chains to nothing it trusts', CASE, async () => {
    const stranger = await new WsLinkTransport(await credentialsFor(foreign.ca, 'api')).listen(parseLinkUrl('wss://127.0.0.1:0'), () => undefined);
    await assert.rejects(new WsLinkTransport(caller).dial({ address: stranger.url, peer: API }), { code: 'TRELLIS_ERR_WS_HANDSHAKE' });
    await stranger.close();
  });

  it('takes only wss:// addresses', CASE, async () => {
    const transport = new WsLinkTransport(caller);
    await assert.rejects(transport.dial({ address: 'tls://127.0.0.1:1', peer: API }), { code: 'TRELLIS_ERR_BAD_ADDRESS' });
    await assert.rejects(transport.listen(parseLinkUrl('127.0.0.1:0'), () => undefined), { code: 'TRELLIS_ERR_BAD_ADDRESS' });
  });

  it('serves a renewed certificate on the outer TLS without restarting', CASE, async () => {
    const renewed = await credentialsFor(mesh.ca, 'api');
    api.replace({ privateKeyPem: renewed.current.privateKeyPem, certPem: renewed.current.certPem });
    const socket = tls.connect({ host: '127.0.0.1', port: portOf(listener.url), rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    assert.equal(socket.getPeerX509Certificate()?.fingerprint256, new X509Certificate(renewed.current.certPem).fingerprint256);
    socket.destroy();
  });

  it('builds its outer client context at the first dial and again only for a new trust bundle, not for a renewed leaf', CASE, async () => {
    const dialler = await credentialsFor(mesh.ca, 'caller');
    const transport = new WsLinkTransport(dialler);
    const original = tls.createSecureContext;
    let outerContexts = 0;
    // The outer context is the one that carries the public roots as well as the mesh bundle.
    tls.createSecureContext = (options) => {
      if (Array.isArray(options?.ca) && options.ca.length > tls.rootCertificates.length) outerContexts++;
      return original(options);
    };
    try {
      const dialOnce = async (): Promise<void> => {
        (await transport.dial({ address: listener.url, peer: API })).socket.destroy();
      };
      assert.equal(outerContexts, 0);
      await dialOnce();
      assert.equal(outerContexts, 1);
      for (let i = 0; i < 3; i++) {
        const renewed = await credentialsFor(mesh.ca, 'caller');
        dialler.replace({ privateKeyPem: renewed.current.privateKeyPem, certPem: renewed.current.certPem, expiresAt: renewed.current.expiresAt });
        await dialOnce();
      }
      assert.equal(outerContexts, 1);
      // A rotation publishes a bundle with a second root: the next dial trusts it.
      dialler.replace({ caPems: [...mesh.ca.caPems(), ...foreign.ca.caPems()] });
      await dialOnce();
      assert.equal(outerContexts, 2);
    } finally {
      tls.createSecureContext = original;
    }
  });
});
