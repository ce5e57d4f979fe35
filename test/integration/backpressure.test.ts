// Per-stream backpressure across real sidecars: a reader that stops reading holds back only
// its own stream; another stream on the same link runs to completion.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect, readAll, sha256 } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';

const STALL_OFFER_BYTES = 256 * 1024 * 1024;
const BULK_BYTES = 64 * 1024 * 1024;

describe('backpressure', () => {
  let cp: ControlPlaneProcess;
  let app: net.Server;
  let server: SidecarProcess;
  let client: SidecarProcess;

  before(async () => {
    cp = await startControlPlane();
    // Connections that start with "stall" are never read again; the others are echoed.
    app = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.once('data', (first: Buffer) => {
        if (first.subarray(0, 5).toString() === 'stall') {
          socket.pause();
          return;
        }
        socket.write(first);
        socket.pipe(socket);
      });
    });
    app.listen(0, '127.0.0.1');
    await once(app, 'listening');
    const appAddress = `127.0.0.1:${(app.address() as net.AddressInfo).port}`;
    server = await startSidecar({ service: 'store', token: await createToken(cp, 'store'), cp, app: appAddress });
    client = await startSidecar({ service: 'loader', token: await createToken(cp, 'loader'), cp, upstreams: ['store'] });
  });

  after(async () => {
    // The stalled stream never finishes by itself, so a drain would wait out its deadline.
    await Promise.all([client?.proc.stop('SIGKILL'), server?.proc.stop('SIGKILL')]);
    await cp?.proc.stop();
    app?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('a stalled stream stays bounded while a bulk stream on the same link completes', async (t) => {
    const port = client.upstreams.get('store')?.port ?? 0;
    const stalled = await connect(port);
    stalled.on('error', () => undefined);
    stalled.write('stall');
    // Offer far more than any buffer should hold; count what the mesh actually takes.
    const block = Buffer.alloc(1024 * 1024, 1);
    let offered = 0;
    while (offered < STALL_OFFER_BYTES && stalled.write(block)) offered += block.length;
    const stalledBlocked = stalled.writableLength > 0;

    const bulk = await connect(port);
    const payload = randomBytes(BULK_BYTES);
    const echoed = readAll(bulk);
    const started = performance.now();
    for (let offset = 0; offset < payload.length; offset += 1024 * 1024) {
      if (!bulk.write(payload.subarray(offset, offset + 1024 * 1024))) await once(bulk, 'drain');
    }
    bulk.end();
    const got = await echoed;
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(`bulk beside a stalled stream: ${(BULK_BYTES / seconds / 1e6).toFixed(0)} MB/s each way (speed is measured in the benchmarks, not asserted here)`);
    assert.equal(sha256(got), sha256(payload));

    // The stalled sender was pushed back: the mesh took at most a few windows plus kernel buffers.
    assert.ok(stalledBlocked, 'the stalled connection felt backpressure');
    const accepted = stalled.bytesWritten - stalled.writableLength;
    assert.ok(accepted < 48 * 1024 * 1024, `the mesh absorbed ${accepted} bytes of a stalled stream`);
    stalled.destroy();
  });
});
