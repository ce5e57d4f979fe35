/**
 * The many-streams load generator, in its own process: opens COUNT connections to PORT and
 * holds them, then sends PAYLOAD bytes on every one at once and waits for each echo. Reports
 * each phase as one JSON line on stdout, then holds the connections until told `close` on
 * stdin (so the harness can read the proxies' memory meanwhile) or the hold time runs out.
 *
 * usage: node many-connections.js PORT COUNT PAYLOAD_BYTES PHASE_TIMEOUT_MS HOLD_TIMEOUT_MS
 */
import net from 'node:net';

/** Connects in flight at once: fast, without overflowing the listen backlogs. */
const CONNECT_CONCURRENCY = 256;

export interface PhaseReport {
  event: 'connected' | 'echoed';
  ok: number;
  failed: number;
  ms: number;
  /** Connections still open when the phase ended. */
  open: number;
  firstError?: string;
}

const [port, count, payloadBytes, phaseTimeoutMs, holdTimeoutMs] = process.argv.slice(2).map(Number);
if (![port, count, payloadBytes, phaseTimeoutMs, holdTimeoutMs].every((value) => Number.isInteger(value) && (value ?? 0) > 0)) {
  process.stderr.write('usage: many-connections PORT COUNT PAYLOAD_BYTES PHASE_TIMEOUT_MS HOLD_TIMEOUT_MS\n');
  process.exit(2);
}

const sockets = new Set<net.Socket>();
let firstError: string | undefined;
const noteError = (error: Error): void => {
  firstError ??= error.message;
};

function connectOne(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port: port!, noDelay: true });
    socket.once('connect', () => {
      sockets.add(socket);
      resolve(true);
    });
    socket.on('error', (error) => {
      noteError(error);
      resolve(false);
    });
    socket.once('close', () => sockets.delete(socket));
  });
}

async function openAll(deadline: number): Promise<{ ok: number; failed: number }> {
  let next = 0;
  let ok = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < count! && Date.now() < deadline) {
      next += 1;
      if (await connectOne()) ok += 1;
      else failed += 1;
    }
  };
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, () => worker()));
  return { ok, failed };
}

function echoOn(socket: net.Socket, payload: Buffer, deadline: number): Promise<boolean> {
  return new Promise((resolve) => {
    let received = 0;
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      resolve(ok);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received >= payload.length) finish(true);
    };
    const onClose = (): void => {
      noteError(new Error(`closed after ${received} of ${payload.length} echoed bytes`));
      finish(false);
    };
    const timer = setTimeout(() => {
      noteError(new Error(`no full echo within the phase time (${received} of ${payload.length} bytes)`));
      finish(false);
    }, Math.max(0, deadline - Date.now()));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(payload);
  });
}

function report(phase: PhaseReport): void {
  process.stdout.write(`${JSON.stringify(phase)}\n`);
}

async function main(): Promise<void> {
  const connectStart = performance.now();
  const opened = await openAll(Date.now() + phaseTimeoutMs!);
  report({ event: 'connected', ...opened, ms: performance.now() - connectStart, open: sockets.size, firstError });

  const payload = Buffer.alloc(payloadBytes!, 0x61);
  const echoStart = performance.now();
  const deadline = Date.now() + phaseTimeoutMs!;
  const results = await Promise.all([...sockets].map((socket) => echoOn(socket, payload, deadline)));
  const ok = results.filter(Boolean).length;
  report({ event: 'echoed', ok, failed: results.length - ok, ms: performance.now() - echoStart, open: sockets.size, firstError });

  // Hold until the harness has read the proxies' memory.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, holdTimeoutMs);
    process.stdin.setEncoding('utf8').on('data', (text: string) => {
      if (text.includes('close')) {
        clearTimeout(timer);
        resolve();
      }
    });
    process.stdin.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  for (const socket of sockets) socket.destroy();
  process.exit(0);
}

void main();
