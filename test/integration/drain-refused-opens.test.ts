// A server sidecar that drains with a --drain-delay of 1 ms sends GOAWAY while its callers still pick
// it: OPENs cross the GOAWAY and are refused (GOING_AWAY), and new links to it are refused.
// Neither may fail a connection: the caller sends each to the other endpoint.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';

const CLIENTS = 8;
const REQUEST_BYTES = 2_048;
/** Connections made before the drain starts, and after the drained sidecar exited. */
const CONNECTIONS_AROUND = 200;
/** Every loop stops by itself after this long, whatever happens. */
const LOAD_BOUND_MS = 60_000;

describe('drain with almost no propagation delay', () => {
  let cp: ControlPlaneProcess;
  const apps: TestApp[] = [];
  const sidecars: SidecarProcess[] = [];

  beforeEach(async () => {
    cp = await startControlPlane();
  });

  afterEach(async () => {
    await Promise.all(sidecars.splice(0).map((sidecar) => sidecar.proc.stop('SIGKILL')));
    await cp.proc.stop();
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await removeDirs(cp.dataDir);
  });

  it('fails no connection: opens refused by the draining endpoint go to the other one', async (t) => {
    const servers: SidecarProcess[] = [];
    for (let n = 0; n < 2; n++) {
      const app = await startEchoApp();
      apps.push(app);
      const server = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: app.address, extra: ['--drain-delay', '1ms', '--drain-timeout', '20s'] });
      servers.push(server);
      sidecars.push(server);
    }
    const client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'] });
    sidecars.push(client);
    await eventually(async () => ((await sidecarStatus(client)).upstreams[0]?.endpoints.length ?? 0) === 2, 'the client to see both echo endpoints');
    const port = client.upstreams.get('echo')?.port ?? 0;

    let made = 0;
    const failures: string[] = [];
    let stopAt = Number.POSITIVE_INFINITY;
    const startedAt = Date.now();
    const loop = async (): Promise<void> => {
      while (made < stopAt && Date.now() - startedAt < LOAD_BOUND_MS) {
        const request = randomBytes(REQUEST_BYTES);
        try {
          const socket = await connect(port);
          const answer = readAll(socket);
          socket.end(request);
          const echoed = await answer;
          socket.destroy();
          if (sha256(echoed) !== sha256(request)) failures.push(`connection ${made}: ${echoed.length} of ${REQUEST_BYTES} bytes came back`);
        } catch (error) {
          failures.push(`connection ${made}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
        }
        made += 1;
      }
    };
    const loops = Array.from({ length: CLIENTS }, () => loop());

    await eventually(() => made >= CONNECTIONS_AROUND, 'connections before the drain');
    const [drained] = servers;
    assert.ok(drained !== undefined);
    drained.proc.child.kill('SIGTERM');
    assert.equal(await drained.proc.exited(), 0, drained.proc.stderr());
    stopAt = made + CONNECTIONS_AROUND;
    await Promise.all(loops);

    assert.ok(made >= stopAt, `the load ran to its end (${made} connections)`);
    assert.deepEqual(failures, []);
    const retried = await scrapeMetric(client, 'trellis_sidecar_upstream_stream_retries_total', { upstream: 'echo' });
    t.diagnostic(`${made} connections, none failed; ${retried} refused at open by the draining sidecar and sent to the other`);
  });
});
