// The apps of the across-clouds tests, run as programs inside network-namespace hosts
// (`node dist/test/support/clouds-apps.js MODE ...`), each printing JSON lines on stdout:
//   server PORT                     a byte-echo server on 127.0.0.1:PORT; one line per connection when it closes
//   echo PORT BYTES [TIMEOUT_MS] [MARKER] [HOLD_MS]
//                                   one connection: streams BYTES (random, or MARKER repeated), checks the echo's sha256
//   load PORT LONG DURATION_MS SHORT_LOOPS
//                                   LONG paced long streams for DURATION_MS plus SHORT_LOOPS loops of short connections
// Every connection starts with a 16-byte random id, so the server's record of it can be matched with the client's.
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/** How one client connection ended. `ok` is byte-exact both ways; `reset` is a socket error (ECONNRESET, EPIPE…). */
export type ClientOutcome = 'ok' | 'mismatch' | 'truncated' | 'reset' | 'timeout';

export interface ClientResult {
  readonly event: 'echo' | 'short' | 'long';
  readonly id: string;
  readonly outcome: ClientOutcome;
  readonly errorCode?: string;
  readonly sent: number;
  readonly received: number;
  readonly sentSha256: string;
  readonly receivedSha256: string;
  /** Date.now() when the connection was started and when its outcome was known. */
  readonly startedAt: number;
  readonly endedAt: number;
}

/** The server's record of one connection, printed when it closes. */
export interface ServerRecord {
  readonly event: 'conn';
  readonly id: string | undefined;
  readonly received: number;
  readonly sha256: string;
  /** `end`: the client half-closed (FIN) and the echo was finished; `error`: a reset or socket error; `closed`: neither. */
  readonly outcome: 'end' | 'error' | 'closed';
  readonly errorCode?: string;
  readonly at: number;
}

const ID_BYTES = 16;
const CHUNK_BYTES = 64 * 1024;

function print(line: object): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function serve(port: number): void {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const hash = createHash('sha256');
    let received = 0;
    let head = Buffer.alloc(0);
    let id: string | undefined;
    let ended = false;
    let errorCode: string | undefined;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      received += chunk.length;
      if (id === undefined) {
        head = Buffer.concat([head, chunk]);
        if (head.length >= ID_BYTES) id = head.subarray(0, ID_BYTES).toString('hex');
      }
      if (!socket.write(chunk)) socket.pause();
    });
    socket.on('drain', () => socket.resume());
    socket.on('end', () => {
      ended = true;
      socket.end();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => (errorCode ??= error.code ?? 'ERROR'));
    socket.on('close', () => {
      const record: ServerRecord = { event: 'conn', id, received, sha256: hash.digest('hex'), outcome: errorCode !== undefined ? 'error' : ended ? 'end' : 'closed', errorCode, at: Date.now() };
      print(record);
    });
  });
  server.listen(port, '127.0.0.1', () => print({ event: 'listening', port }));
}

interface Source {
  /** The next chunk to send, or undefined when done. */
  next(): Buffer | undefined;
}

function randomSource(bytes: number): Source {
  let left = bytes;
  return {
    next: () => {
      if (left <= 0) return undefined;
      const chunk = randomBytes(Math.min(CHUNK_BYTES, left));
      left -= chunk.length;
      return chunk;
    },
  };
}

function markerSource(bytes: number, marker: string): Source {
  const block = Buffer.from(`${marker} `.repeat(Math.ceil(CHUNK_BYTES / (marker.length + 1)))).subarray(0, CHUNK_BYTES);
  let left = bytes;
  return {
    next: () => {
      if (left <= 0) return undefined;
      const chunk = Buffer.from(block.subarray(0, Math.min(block.length, left)));
      left -= chunk.length;
      return chunk;
    },
  };
}

interface ConnectionOptions {
  readonly event: ClientResult['event'];
  readonly port: number;
  readonly timeoutMs: number;
  /** Sends chunks as fast as the socket takes them when undefined; otherwise one chunk per `paceMs` until `until()` says stop. */
  readonly source?: Source;
  readonly paced?: { chunkBytes: number; paceMs: number; until: () => boolean };
  /** Keeps the connection open this long after the echo came back complete, before closing it. */
  readonly holdMs?: number;
  readonly onFirstEcho?: (id: string) => void;
}

/** One connection to the sidecar's upstream port: sends an id and the payload, half-closes, and checks the echo. */
function connection(options: ConnectionOptions): Promise<ClientResult> {
  const startedAt = Date.now();
  const idBytes = randomBytes(ID_BYTES);
  const id = idBytes.toString('hex');
  const sentHash = createHash('sha256');
  const receivedHash = createHash('sha256');
  let sent = 0;
  let received = 0;
  return new Promise((resolve) => {
    let settled = false;
    const socket = net.connect({ host: '127.0.0.1', port: options.port, allowHalfOpen: true });
    const finish = (outcome: ClientOutcome, errorCode?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (pacer !== undefined) clearInterval(pacer);
      const result: ClientResult = {
        event: options.event,
        id,
        outcome,
        errorCode,
        sent,
        received,
        sentSha256: sentHash.digest('hex'),
        receivedSha256: receivedHash.digest('hex'),
        startedAt,
        endedAt: Date.now(),
      };
      if (outcome === 'ok' && options.holdMs !== undefined && options.holdMs > 0) {
        // Reported now; the connection stays open (idle) a while longer.
        setTimeout(() => socket.destroy(), options.holdMs);
        resolve(result);
        return;
      }
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs);
    const write = (chunk: Buffer): boolean => {
      sentHash.update(chunk);
      sent += chunk.length;
      return socket.write(chunk);
    };
    let pacer: NodeJS.Timeout | undefined;
    let halfClosed = false;
    socket.on('connect', () => {
      write(idBytes);
      if (options.paced !== undefined) {
        const { chunkBytes, paceMs, until } = options.paced;
        pacer = setInterval(() => {
          if (until()) {
            clearInterval(pacer);
            pacer = undefined;
            halfClosed = true;
            socket.end();
            return;
          }
          if (socket.writableLength < 4 * chunkBytes) write(randomBytes(chunkBytes));
        }, paceMs);
        return;
      }
      const source = options.source ?? randomSource(0);
      const pump = (): void => {
        for (;;) {
          const chunk = source.next();
          if (chunk === undefined) {
            halfClosed = true;
            socket.end();
            return;
          }
          if (!write(chunk)) {
            socket.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    let firstEcho = false;
    socket.on('data', (chunk: Buffer) => {
      receivedHash.update(chunk);
      received += chunk.length;
      if (!firstEcho) {
        firstEcho = true;
        options.onFirstEcho?.(id);
      }
    });
    socket.on('end', () => {
      if (!halfClosed || received !== sent) return finish('truncated');
      // Compared once both are final: digest() is called in finish.
      const sentCopy = sentHash.copy().digest('hex');
      const receivedCopy = receivedHash.copy().digest('hex');
      finish(sentCopy === receivedCopy ? 'ok' : 'mismatch');
    });
    socket.on('error', (error: NodeJS.ErrnoException) => finish('reset', error.code ?? 'ERROR'));
    socket.on('close', () => finish(received === sent && halfClosed ? 'mismatch' : 'truncated'));
  });
}

async function echo(port: number, bytes: number, timeoutMs: number, marker: string | undefined, holdMs: number): Promise<void> {
  const source = marker === undefined || marker === '' ? randomSource(bytes) : markerSource(bytes, marker);
  print(await connection({ event: 'echo', port, timeoutMs, source, holdMs }));
}

const LONG_CHUNK_BYTES = 16 * 1024;
const LONG_PACE_MS = 10;
const SHORT_BYTES = 32 * 1024;
const SHORT_TIMEOUT_MS = 3_000;
const SHORT_GAP_MS = 10;

async function load(port: number, longStreams: number, durationMs: number, shortLoops: number): Promise<void> {
  const stopAt = Date.now() + durationMs;
  const until = (): boolean => Date.now() >= stopAt;
  let started = 0;
  const longs = Array.from({ length: longStreams }, () =>
    connection({
      event: 'long',
      port,
      timeoutMs: durationMs + 15_000,
      paced: { chunkBytes: LONG_CHUNK_BYTES, paceMs: LONG_PACE_MS, until },
      onFirstEcho: (id) => {
        started += 1;
        print({ event: 'long-started', id, count: started });
      },
    }).then((result) => print(result)),
  );
  const loops = Array.from({ length: shortLoops }, async () => {
    while (!until()) {
      print(await connection({ event: 'short', port, timeoutMs: SHORT_TIMEOUT_MS, source: randomSource(SHORT_BYTES) }));
      await new Promise((resolve) => setTimeout(resolve, SHORT_GAP_MS));
    }
  });
  await Promise.all([...longs, ...loops]);
  print({ event: 'done' });
}

async function main(argv: string[]): Promise<void> {
  const [mode, ...args] = argv;
  const number = (index: number, fallback?: number): number => {
    const value = args[index] === undefined ? fallback : Number(args[index]);
    if (value === undefined || !Number.isFinite(value)) throw new Error(`clouds-apps ${mode}: argument ${index + 1} must be a number`);
    return value;
  };
  if (mode === 'server') return serve(number(0));
  if (mode === 'echo') return echo(number(0), number(1), number(2, 30_000), args[3], number(4, 0));
  if (mode === 'load') return load(number(0), number(1), number(2), number(3));
  throw new Error(`clouds-apps: unknown mode ${mode ?? '(none)'}`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`${String(error)}\n`);
    process.exit(1);
  });
}
