// `trellis sidecar --workers 2` through the real CLI: traffic byte-exact across worker
// processes, /status and /metrics merged over the workers, and a killed worker replaced with
// only its own streams reset.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, sha256, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, setPolicy, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';
import { INITIAL_YOUNG_GENERATION_BYTES } from '../support/young-generation.js';

/**
 * Reaches echo.mesh through the proxy port of `trellis run` (HTTP CONNECT, from HTTP_PROXY): a
 * first use, so the worker that accepts it asks the primary to subscribe to echo.
 */
const VIA_PROXY_SCRIPT = `
const net = require('node:net');
const proxy = new URL(process.env.HTTP_PROXY);
const socket = net.connect(Number(proxy.port), proxy.hostname, () => socket.write('CONNECT echo.mesh:80 HTTP/1.1\\r\\nHost: echo.mesh:80\\r\\n\\r\\n'));
let head = '';
let body = '';
socket.setEncoding('latin1');
socket.on('data', (chunk) => {
  if (!head.endsWith('\\r\\n\\r\\n')) {
    head += chunk;
    if (!head.includes('\\r\\n\\r\\n')) return;
    if (!head.startsWith('HTTP/1.1 200')) { console.log('refused', head.split('\\r\\n')[0]); process.exit(3); }
    body = head.slice(head.indexOf('\\r\\n\\r\\n') + 4);
    head = head.slice(0, head.indexOf('\\r\\n\\r\\n') + 4);
    socket.end('through-the-mesh');
  } else body += chunk;
});
socket.on('end', () => { console.log('echoed', body); process.exit(0); });
`;

interface WorkerStatus {
  index: number;
  pid: number;
  outboundLinks: number;
  streamsActive: { inbound: number; outbound: number };
}

interface MergedStatus {
  configVersion: number;
  outboundLinks: number;
  workers?: WorkerStatus[];
  upstreams: { service: string; endpoints: unknown[] }[];
}

/** What the echo app sends back for `text` through `port`, or '' when the stream is refused. */
async function roundTrip(port: number, text: string): Promise<string> {
  // A refused stream resets the connection, at times before the client saw it connect.
  const socket = await connect(port).catch(() => undefined);
  if (socket === undefined) return '';
  const received = readAll(socket).catch(() => Buffer.alloc(0));
  socket.on('error', () => undefined);
  socket.end(text);
  return (await received).toString();
}

async function statusOf(sidecar: SidecarProcess): Promise<MergedStatus> {
  return (await (await fetch(`${sidecar.adminUrl}/status`)).json()) as MergedStatus;
}

/**
 * A connection to the echo app that keeps sending until finished, so that it spans what happens
 * in between; everything it sent must come back. Its outcome is how it closed.
 */
class LongStream {
  readonly #socket: net.Socket;
  readonly #sent: Buffer[] = [];
  readonly #received: Promise<Buffer>;
  readonly #timer: NodeJS.Timeout;
  /** The error code the socket closed with, or `undefined` for a clean close. */
  readonly closed: Promise<string | undefined>;
  #finished = false;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    const error: { code?: string } = {};
    socket.on('error', (cause: NodeJS.ErrnoException) => (error.code = cause.code ?? 'ERROR'));
    this.#received = readAll(socket).catch(() => Buffer.alloc(0));
    // Not events.once: that rejects on the 'error' before the close.
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(error.code)));
    // Writes go on after an end from the peer: a socket whose process died answers them with a reset.
    this.#timer = setInterval(() => this.#write(), 20);
    this.#write();
  }

  get settled(): boolean {
    return this.#socket.destroyed;
  }

  #write(): void {
    if (this.#finished || this.#socket.destroyed || !this.#socket.writable) return;
    const chunk = randomBytes(4096);
    this.#sent.push(chunk);
    this.#socket.write(chunk);
  }

  /** Stops sending, half-closes, and resolves with whether every byte came back. */
  async finish(): Promise<boolean> {
    this.#finished = true;
    clearInterval(this.#timer);
    this.#socket.end();
    const received = await this.#received;
    return sha256(received) === sha256(Buffer.concat(this.#sent));
  }

  stop(): void {
    this.#finished = true;
    clearInterval(this.#timer);
    this.#socket.destroy();
  }
}

describe('sidecar workers', { timeout: 180_000 }, () => {
  let cp: ControlPlaneProcess;
  let echo: TestApp;
  let echoSidecar: SidecarProcess;
  let client: SidecarProcess;
  let echoPort: number;
  const streams: LongStream[] = [];

  before(async () => {
    cp = await startControlPlane();
    echo = await startEchoApp();
    echoSidecar = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp, app: echo.address, extra: ['--workers', '2'] });
    client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'], extra: ['--workers', '2'] });
    echoPort = client.upstreams.get('echo')?.port ?? 0;
    await eventually(async () => (await statusOf(client)).upstreams[0]?.endpoints.length === 1, 'the client to see the echo endpoint');
  });

  after(async () => {
    for (const stream of streams) stream.stop();
    await Promise.all([client?.proc.stop(), echoSidecar?.proc.stop()]);
    await cp?.proc.stop();
    await echo?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('runs two workers under one identity, and carries concurrent connections byte-exact', async () => {
    for (const sidecar of [client, echoSidecar]) {
      const status = await statusOf(sidecar);
      assert.equal(status.workers?.length, 2);
      assert.equal(new Set(status.workers.map((worker) => worker.pid)).size, 2);
      assert.ok(!status.workers.some((worker) => worker.pid === sidecar.proc.child.pid), 'the workers are processes of their own');
    }
    const results = await Promise.all(
      Array.from({ length: 40 }, async (_, index) => {
        const payload = randomBytes(64 * 1024 + index * 4096);
        const socket = await connect(echoPort);
        const received = readAll(socket);
        socket.end(payload);
        return sha256(await received) === sha256(payload);
      }),
    );
    assert.deepEqual(results.filter((ok) => !ok), []);
    // One control-plane session: the config version is the primary's, not a sum over the workers.
    const status = await statusOf(client);
    assert.equal(await scrapeMetric(client, 'trellis_sidecar_config_version'), status.configVersion);
    assert.ok((await scrapeMetric(client, 'trellis_sidecar_streams_opened_total', { direction: 'outbound' })) >= 40);
    assert.ok((await scrapeMetric(echoSidecar, 'trellis_sidecar_streams_opened_total', { direction: 'inbound' })) >= 40);
    // The workers tune V8 before their code loads, as the primary does (cli/sidecar-worker.ts):
    // the young generations of all three processes, summed, are still at their initial size.
    for (const sidecar of [client, echoSidecar]) {
      const youngBytes = await scrapeMetric(sidecar, 'trellis_sidecar_process_nodejs_heap_space_size_total_bytes', { space: 'new' });
      assert.ok(youngBytes > 0 && youngBytes <= 3 * INITIAL_YOUNG_GENERATION_BYTES, `young generations of the primary and its workers: ${youngBytes} bytes`);
    }
  });

  it('applies a policy change in every worker of the destination', async () => {
    // Ten connections each time: the kernel spreads them over the echo sidecar's workers.
    const results = async (): Promise<string[]> => Promise.all(Array.from({ length: 10 }, (_, i) => roundTrip(echoPort, `ping ${i}`)));
    await setPolicy(cp, ['deny', '--from', 'client', '--to', 'echo']);
    try {
      await eventually(async () => (await results()).every((text) => text === ''), 'every connection to be refused');
    } finally {
      await setPolicy(cp, ['remove', '--from', 'client', '--to', 'echo']);
    }
    await eventually(async () => (await results()).every((text, i) => text === `ping ${i}`), 'every connection to pass again');
    assert.ok((await scrapeMetric(echoSidecar, 'trellis_sidecar_policy_denials_total', { source: 'client', destination: 'echo' })) >= 10);
  });

  it('merges /status and /metrics across the workers: stream gauges add up', async () => {
    // The kernel picks the worker of each connection: open until both hold some.
    const holdsStreams = async (): Promise<boolean> => {
      const workers = (await statusOf(client)).workers ?? [];
      return workers.length === 2 && workers.every((worker) => worker.streamsActive.outbound > 0);
    };
    for (let opened = 0; opened < 200 && !(opened >= 4 && (await holdsStreams())); opened += 1) streams.push(new LongStream(await connect(echoPort)));
    await eventually(holdsStreams, 'both workers to hold streams');
    const status = await statusOf(client);
    const perWorker = (status.workers ?? []).map((worker) => worker.streamsActive.outbound);
    assert.equal(perWorker.reduce((a, b) => a + b, 0), streams.length);
    assert.equal(await scrapeMetric(client, 'trellis_sidecar_streams_active', { direction: 'outbound' }), streams.length);
    assert.equal(status.outboundLinks, (status.workers ?? []).reduce((total, worker) => total + worker.outboundLinks, 0));
    assert.equal(await scrapeMetric(client, 'trellis_sidecar_links_active'), status.outboundLinks);
  });

  it('replaces a worker killed with SIGKILL: its streams are reset, the other worker’s stay byte-exact', async () => {
    const before = (await statusOf(client)).workers ?? [];
    const victim = before.find((worker) => worker.streamsActive.outbound > 0);
    assert.ok(victim !== undefined);
    const survivorStreams = before.filter((worker) => worker !== victim).reduce((total, worker) => total + worker.streamsActive.outbound, 0);
    assert.ok(survivorStreams > 0);
    process.kill(victim.pid, 'SIGKILL');

    // Every stream of the killed worker closes with an error at the client; none hangs.
    await eventually(() => streams.filter((stream) => stream.settled).length === victim.streamsActive.outbound, `${victim.streamsActive.outbound} streams to be reset`, 30_000);
    const failed = streams.filter((stream) => stream.settled);
    const codes = await Promise.all(failed.map((stream) => stream.closed));
    for (const code of codes) assert.ok(code === 'ECONNRESET' || code === 'EPIPE', `a killed worker's stream closed with ${code ?? 'no error'}`);

    // A replacement comes up, under the same primary.
    await eventually(async () => {
      const workers = (await statusOf(client)).workers ?? [];
      return workers.length === 2 && workers.every((worker) => worker.pid !== victim.pid);
    }, 'the killed worker to be replaced', 60_000);

    // The other worker's streams went on through all of it.
    const survivors = streams.filter((stream) => !stream.settled);
    assert.equal(survivors.length, survivorStreams);
    const exact = await Promise.all(survivors.map((stream) => stream.finish()));
    assert.deepEqual(exact.filter((ok) => !ok), []);

    // And the sidecar as a whole still forwards.
    const payload = randomBytes(256 * 1024);
    for (let i = 0; i < 8; i += 1) {
      const socket = await connect(echoPort);
      const received = readAll(socket);
      socket.end(payload);
      assert.equal(sha256(await received), sha256(payload));
    }
  });

  it('trellis run --workers 2: the proxy port subscribes through the primary on first use', async () => {
    const result = await runTrellis(['run', '--service', 'runner', '--token', await createToken(cp, 'runner'), '--control-plane', cp.url, '--workers', '2', '--', process.execPath, '-e', VIA_PROXY_SCRIPT]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'echoed through-the-mesh');
  });

  it('stops with its workers: a SIGTERM drains and exits 0, a SIGKILL of the primary takes the workers along', async () => {
    const clientWorkers = ((await statusOf(client)).workers ?? []).map((worker) => worker.pid);
    for (const stream of streams) stream.stop();
    assert.equal(await client.proc.stop('SIGTERM'), 0, client.proc.stderr());
    assert.deepEqual(clientWorkers.filter(isAlive), []);

    const echoWorkers = ((await statusOf(echoSidecar)).workers ?? []).map((worker) => worker.pid);
    assert.equal(echoWorkers.length, 2);
    await echoSidecar.proc.stop('SIGKILL');
    await eventually(() => echoWorkers.filter(isAlive).length === 0, 'the workers of a killed primary to exit', 30_000);
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
