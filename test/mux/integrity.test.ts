/**
 * Every byte arrives, in order, over real sockets: large transfers both ways, many concurrent
 * streams, half-closes, and the same over TLS 1.3.
 */

import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { echo, next, receiveAll, sendAll, sessionPair, sha256, streamInbox, tcpPair, tlsPair } from './helpers.js';
import type { SocketPair } from './helpers.js';

const SIXTEEN_MIB = 16 * 1024 * 1024;

/** Sends 16 MiB each way on one stream at once; returns the MB/s both ways together. */
async function transferBothWays(sockets: SocketPair): Promise<number> {
  const upload = randomBytes(SIXTEEN_MIB);
  const download = randomBytes(SIXTEEN_MIB);
  const { dialer, acceptor } = sessionPair(sockets, {}, {
    onStream: (stream) => {
      acceptorReceived = receiveAll(stream);
      void sendAll(stream, download);
    },
  });
  let acceptorReceived: Promise<{ bytes: number; sha256: string }> | undefined;
  const startedMs = performance.now();
  const stream = dialer.openStream('bulk');
  const dialerReceived = receiveAll(stream);
  const closed = next(stream, 'close');
  await sendAll(stream, upload);
  const down = await dialerReceived;
  await closed;
  const elapsedMs = performance.now() - startedMs;
  assert.ok(acceptorReceived);
  const up = await acceptorReceived;
  assert.equal(up.bytes, SIXTEEN_MIB);
  assert.equal(up.sha256, sha256(upload));
  assert.equal(down.bytes, SIXTEEN_MIB);
  assert.equal(down.sha256, sha256(download));
  assert.equal(dialer.stats.activeStreams, 0);
  assert.ok(dialer.stats.bytesOut > SIXTEEN_MIB && dialer.stats.bytesIn > SIXTEEN_MIB);
  dialer.close();
  acceptor.close();
  return (2 * SIXTEEN_MIB) / 1e6 / (elapsedMs / 1000);
}

describe('mux byte integrity', () => {
  it('carries 16 MiB each way on one stream over TCP', async (t) => {
    const mbPerSecond = await transferBothWays(await tcpPair());
    t.diagnostic(`TCP: ${mbPerSecond.toFixed(0)} MB/s (both directions together)`);
  });

  it('carries 16 MiB each way on one stream over mutual TLS 1.3', async (t) => {
    const sockets = await tlsPair();
    assert.equal((sockets.client as TLSSocket).getProtocol(), 'TLSv1.3');
    const mbPerSecond = await transferBothWays(sockets);
    t.diagnostic(`TLS 1.3: ${mbPerSecond.toFixed(0)} MB/s (both directions together)`);
  });

  it('keeps 200 concurrent streams of random sizes intact', async () => {
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: echo });
    const transfers = Array.from({ length: 200 }, async (_, index) => {
      const data = randomBytes(randomInt(0, 512 * 1024));
      const stream = dialer.openStream(`svc-${index}`);
      const received = receiveAll(stream);
      await sendAll(stream, data, randomInt(1, 100 * 1024));
      const echoed = await received;
      assert.equal(echoed.bytes, data.length);
      assert.equal(echoed.sha256, sha256(data));
    });
    await Promise.all(transfers);
    assert.equal(dialer.stats.openedStreams, 200);
    assert.equal(acceptor.stats.openedStreams, 200);
    dialer.close();
    acceptor.close();
  });

  it('delivers a half-close each way while the other direction keeps flowing', async () => {
    const inbox = streamInbox();
    const { dialer, acceptor } = sessionPair(await tcpPair(), {}, { onStream: inbox.onStream });

    // The dialer finishes first; the acceptor still sends 1 MiB after the FIN.
    const first = dialer.openStream('first');
    const firstDown = receiveAll(first);
    first.write(Buffer.from('request'));
    first.end();
    assert.equal(first.state, 'localClosed');
    const { stream: firstAccepted, received: requestReceived } = await inbox.nextStream();
    const request = await requestReceived;
    assert.equal(request.bytes, 'request'.length);
    assert.equal(firstAccepted.state, 'remoteClosed');
    const response = randomBytes(1024 * 1024);
    await sendAll(firstAccepted, response);
    assert.equal((await firstDown).sha256, sha256(response));
    assert.equal(first.state, 'closed');

    // The acceptor finishes first; the dialer still sends 1 MiB after the FIN.
    const second = dialer.openStream('second');
    const secondDown = receiveAll(second);
    const { stream: secondAccepted, received: secondUp } = await inbox.nextStream();
    await sendAll(secondAccepted, Buffer.from('early answer'));
    assert.equal((await secondDown).bytes, 'early answer'.length);
    assert.equal(second.state, 'remoteClosed');
    const upload = randomBytes(1024 * 1024);
    const secondClosed = next(secondAccepted, 'close');
    await sendAll(second, upload);
    assert.equal((await secondUp).sha256, sha256(upload));
    await secondClosed;
    assert.equal(acceptor.stats.activeStreams, 0);
    dialer.close();
    acceptor.close();
  });
});
