// After a control-plane restart the stored endpoints are held for their sidecars to come back.
// A sidecar that was disconnected while the control plane was down retries on a back-off of up
// to MAX_RECONNECT_DELAY_MS, so it may register again that long after the restarted control
// plane is serving; until then its endpoint must stay, or every caller refuses new connections
// to a live, healthy endpoint with TRELLIS_ERR_NO_ENDPOINT (docs/reliability.md, finding 13).
// Here the server sidecar reaches the control plane through a gate that the test keeps shut for
// a while after the restart; the lease time is short, so that a lease counted from the store's
// opening would run out within that while.
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MAX_RECONNECT_DELAY_MS } from '../../proto/control.js';
import type { TestApp } from '../support/apps.js';
import { connect, readAll, startEchoApp } from '../support/apps.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, sidecarStatus, startControlPlane, startSidecar } from '../support/mesh.js';

/** The control plane's lease time: far below the sidecars' back-off, so an early expiry shows. */
const LEASE_TTL = '1s';
/** How long after the restart the server sidecar stays away: more than the lease time, less than the back-off bound. */
const AWAY_AFTER_RESTART_MS = Math.round(MAX_RECONNECT_DELAY_MS * 0.6);
/** Pause between two probe connections while the server sidecar is away. */
const PROBE_GAP_MS = 100;

/**
 * A TCP forwarder to the control plane that can be shut: while shut it holds the connections
 * that arrive and forwards them once it opens, so a sidecar's attempt made meanwhile reaches
 * the control plane late — as the next attempt of a sidecar deep in its back-off would.
 */
class Gate {
  readonly #server: net.Server;
  readonly #target: URL;
  readonly #sockets = new Set<net.Socket>();
  #held: net.Socket[] | undefined;

  private constructor(server: net.Server, target: URL) {
    this.#server = server;
    this.#target = target;
  }

  static async forwardTo(target: URL): Promise<Gate> {
    const server = net.createServer({ pauseOnConnect: true });
    const gate = new Gate(server, target);
    server.on('connection', (socket) => gate.#accept(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return gate;
  }

  get url(): string {
    return `https://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`;
  }

  shut(): void {
    this.#held ??= [];
  }

  open(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const socket of held) if (!socket.destroyed) this.#forward(socket);
  }

  async close(): Promise<void> {
    for (const socket of [...this.#sockets, ...(this.#held ?? [])]) socket.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    if (this.#held === undefined) this.#forward(socket);
    else this.#held.push(socket);
  }

  #forward(socket: net.Socket): void {
    const upstream = net.connect(Number(this.#target.port), this.#target.hostname);
    this.#sockets.add(upstream);
    upstream.on('close', () => this.#sockets.delete(upstream));
    for (const [from, to] of [
      [socket, upstream],
      [upstream, socket],
    ] as const) {
      from.pipe(to);
      from.on('error', () => to.destroy());
      from.on('close', () => to.destroy());
    }
    socket.resume();
  }
}

/** The echo, or the socket error that ended the connection instead. */
async function roundTrip(port: number, text: string): Promise<string> {
  try {
    const socket = await connect(port);
    const reply = readAll(socket);
    socket.end(text);
    return (await reply).toString();
  } catch (error) {
    return `failed: ${(error as NodeJS.ErrnoException).code ?? 'no code'}`;
  }
}

/** Error codes in the JSON log records a process wrote on stderr. */
function loggedCodes(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => (JSON.parse(line) as { code?: unknown }).code)
    .filter((code): code is string => typeof code === 'string');
}

async function controlPlaneConnected(sidecar: SidecarProcess): Promise<boolean> {
  return ((await (await fetch(`${sidecar.adminUrl}/status`)).json()) as { controlPlaneConnected: boolean }).controlPlaneConnected;
}

describe('control plane restart, an endpoint whose sidecar comes back late', () => {
  let cp: ControlPlaneProcess;
  let gate: Gate;
  let app: TestApp;
  let server: SidecarProcess;
  let client: SidecarProcess;

  before(async () => {
    cp = await startControlPlane({ leaseTtl: LEASE_TTL });
    gate = await Gate.forwardTo(new URL(cp.url));
    app = await startEchoApp();
    server = await startSidecar({ service: 'echo', token: await createToken(cp, 'echo'), cp: { ...cp, url: gate.url }, app: app.address });
    client = await startSidecar({ service: 'client', token: await createToken(cp, 'client'), cp, upstreams: ['echo'] });
  });

  after(async () => {
    await Promise.all([client, server].map((sidecar) => sidecar?.proc.stop()));
    await cp?.proc.stop();
    await gate?.close();
    await app?.close();
    await removeDirs(cp?.dataDir ?? '');
  });

  it('keeps the endpoint while its sidecar is within its reconnect back-off, and new connections keep working', async () => {
    const port = client.upstreams.get('echo')?.port ?? 0;
    await eventually(async () => (await sidecarStatus(client)).upstreams.some((upstream) => upstream.service === 'echo' && upstream.endpoints.length === 1), 'the client to know the echo endpoint');
    assert.equal(await roundTrip(port, 'before'), 'before');

    await cp.proc.stop('SIGKILL');
    gate.shut();
    cp = await startControlPlane({ dataDir: cp.dataDir, listen: new URL(cp.url).host, leaseTtl: LEASE_TTL });
    const servingAt = Date.now();
    await eventually(() => controlPlaneConnected(client), 'the client sidecar to register with the restarted control plane');

    // The server sidecar is still away (retrying, as after a long back-off); its endpoint stays.
    const replies: string[] = [];
    while (Date.now() - servingAt < AWAY_AFTER_RESTART_MS) {
      replies.push(await roundTrip(port, 'while the server sidecar is away'));
      await new Promise((resolve) => setTimeout(resolve, PROBE_GAP_MS));
    }
    gate.open();
    await eventually(() => controlPlaneConnected(server), 'the server sidecar to register again');

    assert.deepEqual(loggedCodes(client.proc.stderr()).filter((code) => code === 'TRELLIS_ERR_NO_ENDPOINT'), [], 'no connection refused for want of an endpoint');
    assert.ok(replies.length > 0);
    assert.deepEqual(new Set(replies), new Set(['while the server sidecar is away']));
    assert.equal(await roundTrip(port, 'after'), 'after');
    const [echo] = (await sidecarStatus(client)).upstreams.filter((upstream) => upstream.service === 'echo');
    assert.equal(echo?.endpoints.length, 1);
  });
});
