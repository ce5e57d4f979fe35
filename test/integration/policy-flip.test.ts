// Authorization that acts at once, through real processes: a deny reaches every destination
// sidecar (time from the CLI call to its first refused stream, printed); open streams survive
// it, and a deny with --close-existing resets them on both ends with POLICY_DENIED.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../../proto/errors.js';
import type { Credentials } from '../../sidecar/identity/credentials.js';
import type { MuxStream, Session } from '../../sidecar/mux/index.js';
import { connect } from '../support/apps.js';
import { ask, dialLink, joinAs } from '../support/link-probe.js';
import type { ControlPlaneProcess, SidecarProcess } from '../support/mesh.js';
import { createToken, eventually, removeDirs, scrapeMetric, startControlPlane, startSidecar } from '../support/mesh.js';
import { runTrellis } from '../support/processes.js';

/** Bounds of the polling loops; generous on a loaded machine (the figures printed are what count). */
const FLIP_BOUND_MS = 10_000;

/** An app that greets with its name, then echoes; it records how each of its connections ended. */
interface RecordingApp {
  address: string;
  /** The error code of each connection that failed (ECONNRESET: the sidecar reset it). */
  errors: string[];
  close(): Promise<void>;
}

async function startRecordingApp(name: string): Promise<RecordingApp> {
  const errors: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (error: NodeJS.ErrnoException) => errors.push(error.code ?? error.message));
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    address: `127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    errors,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One open stream, either a caller app's connection through its sidecar, or a probe's own stream. */
interface OpenStream {
  via: string;
  /** Sends `text` and resolves with the echo. */
  echo(text: string): Promise<string>;
  /** Resolves with how it ended: the RESET's wire code for a probe stream, the socket error code for a connection. */
  ended: Promise<number | string | undefined>;
}

/** Opens connections through `port` until one reached each named app; bounded in count. */
async function connectionPerApp(port: number, names: string[]): Promise<OpenStream[]> {
  const held = new Map<string, OpenStream>();
  for (let attempt = 0; attempt < 64 && held.size < names.length; attempt++) {
    const socket = await connect(port);
    let errorCode: string | undefined;
    socket.on('error', (error: NodeJS.ErrnoException) => (errorCode = error.code));
    const ended = new Promise<string | undefined>((resolve) => socket.once('close', () => resolve(errorCode)));
    const name = await new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString().trim())));
    if (held.has(name)) {
      // A clean end, so that the app records no error for it.
      socket.resume();
      socket.end();
      continue;
    }
    held.set(name, {
      via: `connection via ${name}`,
      echo: (text) => {
        const answer = new Promise<string>((resolve) => socket.once('data', (chunk: Buffer) => resolve(chunk.toString())));
        socket.write(text);
        return answer;
      },
      ended,
    });
  }
  assert.deepEqual([...held.keys()].sort(), [...names].sort(), 'a connection through every destination sidecar');
  return [...held.values()];
}

/** A probe stream to `service` on `session`, past the app's greeting. */
async function probeStream(session: Session, service: string, via: string): Promise<OpenStream> {
  const stream: MuxStream = session.openStream(service);
  const ended = new Promise<number | undefined>((resolve) => {
    stream.once('reset', (code: number) => resolve(code));
    stream.once('close', () => resolve(undefined));
  });
  await new Promise((resolve) => stream.once('data', resolve));
  return {
    via: `probe stream via ${via}`,
    echo: (text) => {
      const answer = new Promise<string>((resolve) => stream.once('data', (chunk: Buffer) => resolve(chunk.toString())));
      stream.write(Buffer.from(text));
      return answer;
    },
    ended,
  };
}

/** Asks on `session` until a stream is refused; resolves with the refusal's wire code and when it came. */
async function firstRefusal(session: Session, deadline: number): Promise<{ code: number; at: number }> {
  for (;;) {
    const answer = await ask(session, 'db');
    if (answer.outcome === 'reset') return { code: answer.code, at: performance.now() };
    assert.equal(answer.outcome, 'data', 'the link stays up');
    if (performance.now() > deadline) throw new Error('no stream was refused in time');
  }
}

describe('policy changes act at once', () => {
  let cp: ControlPlaneProcess;
  const apps: RecordingApp[] = [];
  const dbs: SidecarProcess[] = [];
  let caller: SidecarProcess;
  let probe: Credentials;
  const sessions: Session[] = [];
  let held: OpenStream[] = [];

  const policy = async (args: string[]): Promise<{ startedAt: number; answeredAt: number }> => {
    const startedAt = performance.now();
    const result = await runTrellis(['policy', ...args, '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(result.code, 0, result.stderr);
    return { startedAt, answeredAt: performance.now() };
  };

  before(async () => {
    cp = await startControlPlane();
    // Both destination sidecars join at once; the caller after them.
    await Promise.all(
      ['d1', 'd2'].map(async (name) => {
        const app = await startRecordingApp(name);
        apps.push(app);
        dbs.push(await startSidecar({ service: 'db', token: await createToken(cp, 'db'), cp, app: app.address }));
      }),
    );
    caller = await startSidecar({ service: 'web', token: await createToken(cp, 'web'), cp, upstreams: ['db'] });
    await eventually(async () => {
      const status = (await (await fetch(`${caller.adminUrl}/status`)).json()) as { upstreams: { endpoints: unknown[] }[] };
      return (status.upstreams[0]?.endpoints.length ?? 0) === 2;
    }, 'the caller to see both db endpoints');
    probe = await joinAs(cp, 'web');
    for (const db of dbs) sessions.push(await dialLink(probe, db.linkAddress, 'db'));
  });

  after(async () => {
    for (const session of sessions) session.close();
    await Promise.all([caller, ...dbs].map((sidecar) => sidecar?.proc.stop()));
    await cp?.proc.stop();
    await Promise.all(apps.map((app) => app.close()));
    await removeDirs(cp?.dataDir ?? '');
  });

  it('a deny refuses new streams on every destination sidecar at once, and leaves open streams alone', async () => {
    const port = caller.upstreams.get('db')?.port ?? 0;
    held = [...(await connectionPerApp(port, ['d1', 'd2'])), ...(await Promise.all(sessions.map((session, i) => probeStream(session, 'db', `d${i + 1}`))))];
    for (const stream of held) assert.equal(await stream.echo('before\n'), 'before\n');

    const startedAt = performance.now();
    const flipped = policy(['deny', '--from', 'web', '--to', 'db']);
    const refusals = await Promise.all(sessions.map((session) => firstRefusal(session, startedAt + FLIP_BOUND_MS)));
    const { answeredAt } = await flipped;
    refusals.forEach(({ code, at }, i) => {
      process.stdout.write(`# policy deny: first refused stream on d${i + 1} ${(at - startedAt).toFixed(0)} ms after the CLI call (${(at - answeredAt).toFixed(0)} ms after its answer)\n`);
      assert.equal(code, ErrorCode.POLICY_DENIED);
    });

    for (const stream of held) assert.equal(await stream.echo('after\n'), 'after\n', `${stream.via} survives a deny without --close-existing`);
    for (const db of dbs) assert.ok((await scrapeMetric(db, 'trellis_sidecar_policy_denials_total', { source: 'web', destination: 'db' })) >= 1);
    assert.deepEqual(apps.flatMap((app) => app.errors), []);
  });

  it('a deny with --close-existing resets the open streams it forbids, on both ends, with POLICY_DENIED', async () => {
    assert.equal(held.length, 4, 'the streams held open by the previous test');
    const denialsBefore = await Promise.all(dbs.map((db) => scrapeMetric(db, 'trellis_sidecar_policy_denials_total', { source: 'web', destination: 'db' })));
    const { startedAt } = await policy(['deny', '--from', 'web', '--to', 'db', '--close-existing']);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_resolve, reject) => (timer = setTimeout(() => reject(new Error('open streams were not reset in time')), FLIP_BOUND_MS)));
    let lastEndedAt = 0;
    const ended = held.map((stream) => stream.ended.finally(() => (lastEndedAt = Math.max(lastEndedAt, performance.now()))));
    const endings = await Promise.race([Promise.all(ended), late]).finally(() => clearTimeout(timer));
    process.stdout.write(`# policy deny --close-existing: the last open stream reset ${(lastEndedAt - startedAt).toFixed(0)} ms after the CLI call\n`);
    // The callers: the probe's own streams got RESET POLICY_DENIED; the app connections a TCP reset.
    assert.deepEqual(endings, ['ECONNRESET', 'ECONNRESET', ErrorCode.POLICY_DENIED, ErrorCode.POLICY_DENIED]);
    // The called apps: each of their two connections was reset too.
    await eventually(() => apps.every((app) => app.errors.length === 2), 'both apps to see their connections reset');
    assert.deepEqual(apps.map((app) => app.errors), [['ECONNRESET', 'ECONNRESET'], ['ECONNRESET', 'ECONNRESET']]);
    const denialsAfter = await Promise.all(dbs.map((db) => scrapeMetric(db, 'trellis_sidecar_policy_denials_total', { source: 'web', destination: 'db' })));
    assert.deepEqual(denialsAfter.map((count, i) => count - (denialsBefore[i] ?? 0)), [2, 2], 'each reset counted as a denial');
  });

  it('--close-existing goes with deny only', async () => {
    const result = await runTrellis(['policy', 'allow', '--from', 'web', '--to', 'db', '--close-existing', '--control-plane', cp.url, '--admin-token-file', cp.adminTokenFile]);
    assert.equal(result.code, 2);
    assert.ok(result.stderr.includes('[TRELLIS_ERR_USAGE]'), result.stderr);
  });
});
