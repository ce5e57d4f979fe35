// The apps of the chaos and soak runs, as programs inside network-namespace hosts
// (`node dist/test/chaos/traffic.js MODE JSON`), each printing JSON lines on stdout:
//   server {"port":N}       one app on 127.0.0.1:N that behaves per connection as the client's mode byte asks
//   client {...TrafficPlan} mixed traffic to a sidecar's upstream port for a bounded time
// Every connection starts with a 16-byte random id and one mode byte, so the server's record of
// it can be matched with the client's and the server knows how to misbehave:
//   E echo · S echo, reading slowly (a slow consumer) · N accept and never read · R read a little, then reset.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export const ID_BYTES = 16;
/** The bytes before the payload: the id and the mode byte. */
export const HEADER_BYTES = ID_BYTES + 1;
const CHUNK_BYTES = 64 * 1024;
/** What an `R` server reads before it resets the connection. */
export const RESET_AFTER_BYTES = 64 * 1024;
/** An `S` server reads one chunk, then waits this long before reading the next. */
const SLOW_READ_PAUSE_MS = 20;
/** An `N` server writes one byte this often, to hear of a reset. */
const NOREAD_HEARTBEAT_MS = 250;

/** The kinds of stream a client opens. */
export type StreamKind = 'bulk' | 'short' | 'idle' | 'slow' | 'noread' | 'reset';

const MODE_OF: Readonly<Record<StreamKind, string>> = { bulk: 'E', short: 'E', idle: 'E', slow: 'S', noread: 'N', reset: 'R' };

/**
 * How one client connection ended, as its app saw it. `ok`: the echo came back whole and the
 * server half-closed; `reset`: a socket error (ECONNRESET, ECONNREFUSED, EPIPE…); `truncated`: a
 * clean end with bytes missing; `mismatch`: every byte count right but other bytes; `timeout`:
 * nothing told the app anything within its bound; `abandoned`: the client gave up on purpose
 * (a stream to an app that never reads) and reset its own connection.
 */
export type ClientOutcome = 'ok' | 'mismatch' | 'truncated' | 'reset' | 'timeout' | 'abandoned';

export interface ClientRecord {
  readonly event: 'stream';
  readonly kind: StreamKind;
  readonly id: string;
  readonly outcome: ClientOutcome;
  readonly errorCode?: string;
  /** For a truncated stream: whether the socket saw a FIN (`end`) or only closed (`close`). */
  readonly endedBy?: 'end' | 'close';
  /** Bytes written, the header included, and bytes of echo received. */
  readonly sent: number;
  readonly received: number;
  readonly sentSha256: string;
  readonly receivedSha256: string;
  /** Date.now() when the connection was started and when its outcome was known. */
  readonly startedAt: number;
  readonly endedAt: number;
}

/** The server's record of one connection: `open` once the id is read, `close` when it closes. */
export interface ServerRecord {
  readonly event: 'open' | 'close';
  readonly id: string;
  readonly mode: string;
  readonly received: number;
  readonly sha256: string;
  /** `end`: the client half-closed and the echo was finished; `error`: a reset or socket error; `closed`: neither; `app-reset`: this app reset it on purpose. */
  readonly outcome?: 'end' | 'error' | 'closed' | 'app-reset';
  readonly errorCode?: string;
  readonly at: number;
}

/** What a client runs: loops of each kind for `durationMs`, and `idle` connections held for all of it. */
export interface TrafficPlan {
  readonly port: number;
  readonly durationMs: number;
  /** Loops of bulk streams (`bulkBytes` each, as fast as the socket takes them). */
  readonly bulk?: number;
  readonly bulkBytes?: number;
  /** Pause between two bulk streams of a loop. @default 20 */
  readonly bulkGapMs?: number;
  /** Loops of short connections (32 KiB each, `shortGapMs` apart). */
  readonly short?: number;
  readonly shortGapMs?: number;
  /** Connections that send a little, stay idle for the whole run, then send a little more and finish. */
  readonly idle?: number;
  /** Loops of streams to a slow consumer, an app that never reads, an app that resets. */
  readonly slow?: number;
  readonly noread?: number;
  readonly reset?: number;
  /** At most this many connections in all, whatever the duration. @default 20000 */
  readonly maxStreams?: number;
}

export const SHORT_BYTES = 32 * 1024;
const SHORT_TIMEOUT_MS = 15_000;
const BULK_TIMEOUT_MS = 60_000;
const IDLE_SEND_BYTES = 4 * 1024;
const SLOW_BYTES = 512 * 1024;
/** More than the kernel buffers on the way hold, so that the client is still writing when the reset comes. */
const RESET_STREAM_BYTES = 16 * 1024 * 1024;
const NOREAD_STREAM_BYTES = 16 * 1024 * 1024;
/** A client of an app that never reads gives up after this long. */
export const NOREAD_ABANDON_MS = 4_000;
const LOOP_GAP_MS = 20;
/** How long after an early end a socket error still counts as the app being told of a reset. */
const EOF_GRACE_MS = 1_000;

function print(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function serve(port: number): void {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const hash = createHash('sha256');
    let received = 0;
    let head = Buffer.alloc(0);
    let id = '';
    let mode = '';
    let ended = false;
    let appReset = false;
    let errorCode: string | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    const onPayload = (chunk: Buffer): void => {
      if (mode === 'N') {
        // Never read again: the kernel buffers fill, then the sidecar's stream window, then the
        // client blocks. A paused socket hears of a reset only when it writes, so it writes a byte
        // now and then.
        socket.pause();
        heartbeat ??= setInterval(() => socket.write('.'), NOREAD_HEARTBEAT_MS);
        return;
      }
      if (mode === 'R' && received >= RESET_AFTER_BYTES) {
        appReset = true;
        socket.resetAndDestroy();
        return;
      }
      if (!socket.write(chunk)) socket.pause();
      if (mode === 'S') {
        socket.pause();
        setTimeout(() => socket.resume(), SLOW_READ_PAUSE_MS);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      if (mode === '') {
        head = Buffer.concat([head, chunk]);
        if (head.length < HEADER_BYTES) return;
        id = head.subarray(0, ID_BYTES).toString('hex');
        mode = String.fromCharCode(head[ID_BYTES] ?? 0);
        print({ event: 'open', id, mode, received, sha256: '', at: Date.now() } satisfies ServerRecord);
        onPayload(head);
        return;
      }
      onPayload(chunk);
    });
    socket.on('drain', () => socket.resume());
    socket.on('end', () => {
      ended = true;
      socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (errorCode ??= error.code ?? 'ERROR'));
    socket.on('close', () => {
      clearInterval(heartbeat);
      const outcome = appReset ? 'app-reset' : errorCode !== undefined ? 'error' : ended ? 'end' : 'closed';
      print({ event: 'close', id, mode, received, sha256: hash.digest('hex'), outcome, errorCode, at: Date.now() } satisfies ServerRecord);
    });
  });
  server.listen(port, '127.0.0.1', () => print({ event: 'listening', port }));
}

interface ConnectionOptions {
  readonly kind: StreamKind;
  readonly port: number;
  readonly bytes: number;
  readonly timeoutMs: number;
  /** Sends the first `IDLE_SEND_BYTES`, waits until this resolves, then sends the rest. */
  readonly idleUntil?: Promise<void>;
  /** Gives up (outcome `abandoned`) after this long instead of timing out. */
  readonly abandonAfterMs?: number;
}

/** One connection to the sidecar's upstream port: sends the header and the payload, half-closes, and checks the echo. */
export function connection(options: ConnectionOptions): Promise<ClientRecord> {
  const startedAt = Date.now();
  const idBytes = randomBytes(ID_BYTES);
  const id = idBytes.toString('hex');
  const sentHash = createHash('sha256');
  const receivedHash = createHash('sha256');
  let sent = 0;
  let received = 0;
  return new Promise((resolve) => {
    let settled = false;
    let halfClosed = false;
    const socket = net.connect({ host: '127.0.0.1', port: options.port, allowHalfOpen: true });
    let endedBy: ClientRecord['endedBy'];
    const finish = (outcome: ClientOutcome, errorCode?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(abandon);
      // Our own give-up is a reset the server's app must be told of, not a quiet close.
      if (outcome === 'abandoned' || outcome === 'timeout') socket.resetAndDestroy();
      else socket.destroy();
      resolve({ event: 'stream', kind: options.kind, id, outcome, errorCode, endedBy: outcome === 'truncated' ? endedBy : undefined, sent, received, sentSha256: sentHash.digest('hex'), receivedSha256: receivedHash.digest('hex'), startedAt, endedAt: Date.now() });
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs);
    const abandon = options.abandonAfterMs === undefined ? undefined : setTimeout(() => finish('abandoned'), options.abandonAfterMs);
    const write = (chunk: Buffer): boolean => {
      sentHash.update(chunk);
      sent += chunk.length;
      return socket.write(chunk);
    };
    let left = options.bytes;
    const pump = (): void => {
      while (!settled) {
        if (left <= 0) {
          halfClosed = true;
          socket.end();
          return;
        }
        const chunk = randomBytes(Math.min(CHUNK_BYTES, left));
        left -= chunk.length;
        if (!write(chunk)) {
          socket.once('drain', pump);
          return;
        }
      }
    };
    socket.on('connect', () => {
      write(Buffer.concat([idBytes, Buffer.from(MODE_OF[options.kind])]));
      if (options.idleUntil === undefined) return pump();
      const first = Math.min(IDLE_SEND_BYTES, left);
      left -= first;
      write(randomBytes(first));
      void options.idleUntil.then(() => {
        if (!settled) pump();
      });
    });
    socket.on('data', (chunk: Buffer) => {
      receivedHash.update(chunk);
      received += chunk.length;
    });
    socket.on('end', () => {
      endedBy = 'end';
      if (halfClosed && received === sent) return finish(sentHash.copy().digest('hex') === receivedHash.copy().digest('hex') ? 'ok' : 'mismatch');
      // An end before the whole echo: a reset that reached us while we wrote can surface as an EOF
      // first (our write took the kernel's ECONNRESET, the next read returned 0), with the write's
      // error right behind it. An app is told then; only an end with no error after it is silent.
      // (libuv reports a reset that arrives with data as an end; a write of zero bytes fetches the
      // error, as the sidecars do, while we have not half-closed.)
      if (!halfClosed) socket.write(Buffer.alloc(0));
      setTimeout(() => finish('truncated'), EOF_GRACE_MS);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish('reset', endedBy === 'end' ? `${error.code ?? 'ERROR'} after end` : (error.code ?? 'ERROR')));
    socket.on('close', (hadError: boolean) => {
      if (endedBy === 'end' && !hadError) return;
      endedBy ??= 'close';
      finish('truncated');
    });
  });
}

const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function client(plan: TrafficPlan): Promise<void> {
  const stopAt = Date.now() + plan.durationMs;
  const maxStreams = plan.maxStreams ?? 20_000;
  let opened = 0;
  const more = (): boolean => Date.now() < stopAt && opened < maxStreams;
  const run = async (options: ConnectionOptions, gapMs = LOOP_GAP_MS): Promise<void> => {
    while (more()) {
      opened += 1;
      print(await connection(options));
      await delay(gapMs);
    }
  };
  const loops = (count: number | undefined, options: ConnectionOptions, gapMs?: number): Promise<void>[] => Array.from({ length: count ?? 0 }, () => run(options, gapMs));
  const { port } = plan;
  const idleUntil = delay(plan.durationMs);
  const idles = Array.from({ length: plan.idle ?? 0 }, () => {
    opened += 1;
    return connection({ kind: 'idle', port, bytes: 2 * IDLE_SEND_BYTES, timeoutMs: plan.durationMs + BULK_TIMEOUT_MS, idleUntil }).then(print);
  });
  await Promise.all([
    ...idles,
    ...loops(plan.bulk, { kind: 'bulk', port, bytes: plan.bulkBytes ?? 4 * 1024 * 1024, timeoutMs: BULK_TIMEOUT_MS }, plan.bulkGapMs),
    ...loops(plan.short, { kind: 'short', port, bytes: SHORT_BYTES, timeoutMs: SHORT_TIMEOUT_MS }, plan.shortGapMs),
    ...loops(plan.slow, { kind: 'slow', port, bytes: SLOW_BYTES, timeoutMs: BULK_TIMEOUT_MS }),
    ...loops(plan.noread, { kind: 'noread', port, bytes: NOREAD_STREAM_BYTES, timeoutMs: BULK_TIMEOUT_MS, abandonAfterMs: NOREAD_ABANDON_MS }),
    ...loops(plan.reset, { kind: 'reset', port, bytes: RESET_STREAM_BYTES, timeoutMs: SHORT_TIMEOUT_MS }),
  ]);
  print({ event: 'done', opened });
}

async function main(argv: string[]): Promise<void> {
  const [mode, json = '{}'] = argv;
  const args = JSON.parse(json) as Record<string, unknown>;
  if (typeof args['port'] !== 'number') throw new Error(`traffic ${mode ?? ''}: the JSON argument needs a numeric "port"`);
  if (mode === 'server') return serve(args['port']);
  if (mode === 'client') {
    if (typeof args['durationMs'] !== 'number') throw new Error('traffic client: the plan needs a numeric "durationMs"');
    return client(args as unknown as TrafficPlan);
  }
  throw new Error(`traffic: unknown mode ${mode ?? '(none)'}; use server or client`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  });
}
