import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { HealthMessage } from '../../proto/control.js';
import type { ProbeResult } from '../../sidecar/health/index.js';
import { HealthVerdict, httpProbe, parseHealthCheck, startAppHealthChecks, tcpProbe } from '../../sidecar/health/index.js';

describe('HealthVerdict', () => {
  it('takes its first verdict from the first check, then turns unhealthy after 2 failures in a row and healthy again after 1 success', () => {
    const verdict = new HealthVerdict(2, 1);
    assert.equal(verdict.known, false);
    assert.equal(verdict.healthy, false, 'never healthy before a check passed');
    assert.equal(verdict.record(true), true, 'the first result is the first verdict');
    assert.equal(verdict.healthy, true);
    assert.equal(verdict.record(false), false);
    assert.equal(verdict.record(true), false, 'one failure is forgiven');
    assert.equal(verdict.record(false), false);
    assert.equal(verdict.record(false), true);
    assert.equal(verdict.healthy, false);
    assert.equal(verdict.record(false), false);
    assert.equal(verdict.record(true), true);
    assert.equal(verdict.healthy, true);
  });
});

describe('parseHealthCheck', () => {
  it('reads tcp, http:/PATH and http:/PATH:STATUS', () => {
    assert.deepEqual(parseHealthCheck('tcp'), { kind: 'tcp' });
    assert.deepEqual(parseHealthCheck('http:/healthz'), { kind: 'http', path: '/healthz' });
    assert.deepEqual(parseHealthCheck('http:/ready?full=1:204'), { kind: 'http', path: '/ready?full=1', expectedStatus: 204 });
    assert.deepEqual(parseHealthCheck('http:/a:b'), { kind: 'http', path: '/a:b' });
  });

  it('refuses anything else, naming the flag', () => {
    for (const bad of ['', 'udp', 'http:', 'http:healthz', 'http:/x:999', 'http:/a b', 'http://host/x']) {
      assert.throws(
        () => parseHealthCheck(bad, '--health-check'),
        (error: Error & { code?: string }) => error.code === 'TRELLIS_ERR_BAD_HEALTH_CHECK' && error.message.startsWith('--health-check'),
        bad,
      );
    }
  });
});

describe('probes against real sockets', () => {
  let server: http.Server;
  let port: number;
  let closedPort: number;
  before(async () => {
    server = http.createServer((request, response) => {
      if (request.url === '/hang') return; // never answers
      response.statusCode = request.url === '/healthz' ? 200 : request.url === '/empty' ? 204 : 503;
      response.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
    const spare = net.createServer().listen(0, '127.0.0.1');
    await once(spare, 'listening');
    closedPort = (spare.address() as AddressInfo).port;
    await new Promise((resolve) => spare.close(resolve));
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('tcp passes when the app accepts and fails when nothing listens', async () => {
    assert.equal((await tcpProbe({ host: '127.0.0.1', port })(500)).ok, true);
    const refused = await tcpProbe({ host: '127.0.0.1', port: closedPort })(500);
    assert.deepEqual(refused, { ok: false, detail: 'connect: ECONNREFUSED' });
  });

  it('http passes on a 2xx, or exactly the expected status', async () => {
    const app = { host: '127.0.0.1', port };
    assert.equal((await httpProbe(app, '/healthz')(500)).ok, true);
    assert.equal((await httpProbe(app, '/empty')(500)).ok, true);
    assert.deepEqual(await httpProbe(app, '/other')(500), { ok: false, detail: 'GET /other: 503' });
    assert.equal((await httpProbe(app, '/other', 503)(500)).ok, true);
    assert.equal((await httpProbe(app, '/healthz', 204)(500)).ok, false);
    assert.equal((await httpProbe({ host: '127.0.0.1', port: closedPort }, '/healthz')(500)).ok, false);
  });

  it('http fails at the timeout when the app does not answer', async () => {
    const started = performance.now();
    const result = await httpProbe({ host: '127.0.0.1', port }, '/hang')(150);
    assert.deepEqual(result, { ok: false, detail: 'GET /hang: no answer within 150 ms' });
    assert.ok(performance.now() - started < 1000);
  });
});

/** A control channel stand-in that records what it was sent. */
class FakeChannel extends EventEmitter {
  readonly sent: boolean[] = [];
  send(message: HealthMessage): boolean {
    this.sent.push(message.healthy);
    this.emit('sent');
    return true;
  }
}

describe('startAppHealthChecks', () => {
  it('reports each flip of the verdict, and the current verdict after every (re)connect', async () => {
    const results = [false, false, false, true, true];
    let checks = 0;
    const probe = (): Promise<ProbeResult> => {
      const ok = results[Math.min(checks, results.length - 1)]!;
      checks += 1;
      return Promise.resolve({ ok, detail: ok ? 'up' : 'down' });
    };
    const channel = new FakeChannel();
    channel.emit('connected'); // before the checks start: nobody listens yet
    const health = startAppHealthChecks({
      app: { host: '127.0.0.1', port: 1 },
      options: { check: { kind: 'tcp' }, intervalMs: 5, timeoutMs: 5 },
      channel,
      logger: pino({ level: 'silent' }),
      probe,
    });
    // The checks' timers do not hold the process open (a sidecar has sockets for that): this does.
    const keepAlive = setTimeout(() => undefined, 10_000);
    while (channel.sent.length < 2) await once(channel, 'sent');
    clearTimeout(keepAlive);
    assert.deepEqual(channel.sent, [false, true], 'unhealthy from the first failed check, healthy after one success');
    channel.emit('connected');
    assert.deepEqual(channel.sent, [false, true, true]);
    health.stop();
    channel.emit('connected');
    assert.equal(channel.sent.length, 3, 'stopped: no more reports');
    assert.equal(health.healthy, true);
  });

  it('refuses a timeout longer than the interval', () => {
    assert.throws(
      () => startAppHealthChecks({ app: { host: '127.0.0.1', port: 1 }, options: { check: { kind: 'tcp' }, intervalMs: 100, timeoutMs: 200 }, channel: new FakeChannel(), logger: pino({ level: 'silent' }) }),
      { code: 'TRELLIS_ERR_BAD_HEALTH_CHECK' },
    );
  });
});
