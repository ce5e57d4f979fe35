// Graceful drain: SIGTERM during traffic loses no byte of any stream already open, and the
// sidecar exits 0.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, removeDirs, startControlPlane, startSidecar } from '../support/mesh.js';

const STREAMS = 16;
const BYTES_PER_STREAM = 8 * 1024 * 1024;
const CHUNK_BYTES = 64 * 1024;

/** Streams `payload` in chunks, pacing itself on the echo so the stream stays open a while. */
async function paced(socket: Socket, payload: Buffer, halfway: () => void): Promise<void> {
  for (let offset = 0; offset < payload.length; offset += CHUNK_BYTES) {
    if (offset === payload.length / 2) halfway();
    if (!socket.write(payload.subarray(offset, offset + CHUNK_BYTES))) await once(socket, 'drain');
    await new Promise((resolve) => setImmediate(resolve));
  }
  socket.end();
}

describe('graceful drain', () => {
  let cp: ControlPlaneProcess;
  let app: TestApp;
  let server: SidecarProcess;
  let client: SidecarProcess;

  beforeEach(async () => {
    cp = await startControlPlane();
    app = await startEchoApp();
    const drainFlags = ['--drain-delay', '200ms', '--drain-timeout', '60s'];
    server = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: app.address, extra: drainFlags });
    client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'], extra: drainFlags });
  });

  afterEach(async () => {
    await Promise.all([client.proc.stop('SIGKILL'), server.proc.stop('SIGKILL')]);
    await cp.proc.stop();
    await app.close();
    await removeDirs(cp.dataDir);
  });

  for (const side of ['server', 'client'] as const) {
    it(`SIGTERM to the ${side} sidecar under load loses no byte of open streams`, async () => {
      const port = client.upstreams.get('echo')?.port ?? 0;
      const sockets = await Promise.all(Array.from({ length: STREAMS }, () => connect(port)));
      let halfwayCount = 0;
      let signalled: (() => void) | undefined;
      const allHalfway = new Promise<void>((resolve) => (signalled = resolve));
      const results = sockets.map(async (socket) => {
        const payload = randomBytes(BYTES_PER_STREAM);
        const echoed = readAll(socket);
        await paced(socket, payload, () => {
          halfwayCount += 1;
          if (halfwayCount === STREAMS) signalled?.();
        });
        const got = await echoed;
        return { sent: sha256(payload), got: sha256(got), length: got.length };
      });
      await allHalfway;
      const target = side === 'server' ? server : client;
      target.proc.child.kill('SIGTERM');
      for (const result of await Promise.all(results)) {
        assert.equal(result.length, BYTES_PER_STREAM);
        assert.equal(result.got, result.sent);
      }
      assert.equal(await target.proc.exited(), 0, target.proc.stderr());
    });
  }
});
