// A drained link ends once its streams are done, but its socket still holds their last frames
// (DATA, FIN) for a while: a sidecar that counted the link closed at that point exited with
// them unsent, and the peer saw the link end with streams open (a lost tail, reset streams).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { InboundHandler } from '../../sidecar/forward/inbound.js';
import { LinkManager } from '../../sidecar/links/link-manager.js';
import { PrometheusSidecarMetrics } from '../../sidecar/metrics/index.js';
import { Session } from '../../sidecar/mux/index.js';
import { next, tcpPair } from '../mux/helpers.js';

const logger = pino({ level: 'silent' });

describe('a drain waits for the links\' sockets', () => {
  it('inbound: whenIdle resolves after the drained link\'s socket has closed, not when its session ends', async () => {
    const { client, server } = await tcpPair();
    const inbound = new InboundHandler({ service: 'api', app: undefined, isAllowed: () => true, metrics: new PrometheusSidecarMetrics({ service: 'api' }), logger });
    inbound.accept({ socket: server, peer: { kind: 'service', service: 'web' }, peerId: 'sc-web', peerAddress: 'web' });
    // The peer reads nothing yet: the GOAWAY and the FIN stay queued, the socket open.
    client.pause();
    const peer = new Session(client, { role: 'dialer' });
    const order: string[] = [];
    server.once('close', () => order.push('socket closed'));
    inbound.drain();
    const idle = inbound.whenIdle().then(() => order.push('idle'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], 'idle while the socket is still open');
    client.resume();
    await idle;
    assert.deepEqual(order, ['socket closed', 'idle']);
    peer.close();
  });

  it('outbound: whenClosed resolves after the drained link\'s socket has closed', async () => {
    const { client, server } = await tcpPair();
    const links = new LinkManager({
      dialer: { dial: () => Promise.resolve({ socket: client, peer: { kind: 'service', service: 'api' }, peerId: 'sc-api', peerAddress: 'api' }) },
      metrics: new PrometheusSidecarMetrics({ service: 'web' }),
      logger,
    });
    const session = await links.sessionFor({ address: '127.0.0.1:1', peer: { kind: 'service', service: 'api' } });
    server.pause();
    const peer = new Session(server, { role: 'acceptor' });
    const sessionClosed = next(session, 'close');
    const order: string[] = [];
    client.once('close', () => order.push('socket closed'));
    const closed = links.whenClosed().then(() => order.push('closed'));
    links.drain();
    server.resume();
    await sessionClosed;
    await Promise.all([closed, once(client, 'close')]);
    assert.deepEqual(order, ['socket closed', 'closed']);
    peer.close();
  });
});
