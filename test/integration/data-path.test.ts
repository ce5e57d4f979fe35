// The whole data path through real processes: app → sidecar → mTLS link → sidecar → app.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';

describe('data path', () => {
  let cp: ControlPlaneProcess;
  let echo: TestApp;
  let echoSidecar: SidecarProcess;
  let clientSidecar: SidecarProcess;
  let echoPort: number;

  before(async () => {
    cp = await startControlPlane();
    echo = await startEchoApp();
    echoSidecar = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: echo.address });
    clientSidecar = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'] });
    echoPort = clientSidecar.upstreams.get('echo')?.port ?? 0;
  });

  after(async () => {
    await Promise.all([clientSidecar?.proc.stop(), echoSidecar?.proc.stop()]);
    await cp?.proc.stop();
    await echo?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('carries 64 MiB each way intact, and the client half-close reaches the app', async () => {
    const payload = randomBytes(64 * 1024 * 1024);
    const socket = await connect(echoPort);
    const received = readAll(socket);
    // Written in pieces with backpressure, as a real client would.
    for (let offset = 0; offset < payload.length; offset += 1024 * 1024) {
      if (!socket.write(payload.subarray(offset, offset + 1024 * 1024))) await once(socket, 'drain');
    }
    socket.end();
    const echoed = await received;
    assert.equal(echoed.length, payload.length);
    assert.equal(sha256(echoed), sha256(payload));
  });

  it('delivers an app half-close while the client keeps sending', async () => {
    const fromApp = randomBytes(1024 * 1024);
    const fromClient = randomBytes(4 * 1024 * 1024);
    let appReceived: Promise<Buffer> | undefined;
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      appReceived = readAll(socket);
      socket.end(fromApp); // the app finishes its direction first
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const app = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const halfSidecar = await startSidecar({ service: 'half', token: await createToken(cp, 'half'), cp, app });
    const client = await startSidecar({ service: 'half-client', token: await createToken(cp, 'half-client'), cp, upstreams: ['half'] });
    try {
      const socket = await connect(client.upstreams.get('half')?.port ?? 0);
      const got = await readAll(socket); // 'end' arrives while our direction is still open
      assert.equal(sha256(got), sha256(fromApp));
      assert.equal(socket.writable, true);
      socket.end(fromClient);
      await once(socket, 'close');
      assert.ok(appReceived);
      assert.equal(sha256(await appReceived), sha256(fromClient));
    } finally {
      await Promise.all([client.proc.stop(), halfSidecar.proc.stop()]);
      server.close();
    }
  });

  it('carries 200 concurrent connections through one link pair, all bytes intact', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const payload = randomBytes(16 * 1024 + index * 1024);
        const socket = await connect(echoPort);
        const received = readAll(socket);
        socket.end(payload);
        return { sent: sha256(payload), got: sha256(await received) };
      }),
    );
    for (const { sent, got } of results) assert.equal(got, sent);
    const status = (await (await fetch(`${clientSidecar.adminUrl}/status`)).json()) as { outboundLinks: number };
    assert.equal(status.outboundLinks, 1, 'all streams share one link');
  });
});
