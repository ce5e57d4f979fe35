/**
 * The head-of-line load generator, in its own process. Echoes BYTES through PORT on one
 * connection and reports how long it took. With `stalled`, it first opens another connection
 * through the same port, to an app that stops reading it (clients/echo-server.ts), and writes
 * into it until the path pushes back; that connection stays open, unread, during the echo.
 * Through Trellis both connections are streams of one link.
 *
 * usage: node bulk-beside-stall.js PORT BYTES alone|stalled TIMEOUT_MS
 * prints one JSON line: { "bytes", "seconds", "stalledBytesTaken" } or { "error" } (exit 1)
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { STALL_MARKER } from './stall-marker.js';

const BLOCK_BYTES = 1024 * 1024;
/** The stalled connection is considered pushed back when no 'drain' comes within this time. */
const PUSHBACK_QUIET_MS = 500;
/** Bounds on filling the stalled connection, whatever the path does. */
const MAX_STALL_OFFER_BYTES = 512 * 1024 * 1024;
const MAX_STALL_FILL_MS = 15_000;

const [portText, bytesText, mode, timeoutText] = process.argv.slice(2);
const [port, bytes, timeoutMs] = [Number(portText), Number(bytesText), Number(timeoutText)];
if (![port, bytes, timeoutMs].every((value) => Number.isInteger(value) && value > 0) || (mode !== 'alone' && mode !== 'stalled')) {
  process.stderr.write('usage: bulk-beside-stall PORT BYTES alone|stalled TIMEOUT_MS\n');
  process.exit(2);
}

const overall = setTimeout(() => fail(new Error(`not done within ${timeoutMs} ms`)), timeoutMs);

function fail(error: Error): never {
  process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
  process.exit(1);
}

async function connect(): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/** Writes into a connection nobody reads until the path stops taking bytes; returns how many it took. */
async function fillStalled(socket: net.Socket): Promise<number> {
  socket.on('error', (error) => fail(new Error(`stalled connection: ${error.message}`)));
  socket.write(STALL_MARKER);
  const block = Buffer.alloc(BLOCK_BYTES, 0x73);
  const deadline = Date.now() + MAX_STALL_FILL_MS;
  let offered = 0;
  while (offered < MAX_STALL_OFFER_BYTES && Date.now() < deadline) {
    offered += block.length;
    if (socket.write(block)) continue;
    const drained = await Promise.race([once(socket, 'drain').then(() => true), new Promise<boolean>((resolve) => setTimeout(resolve, PUSHBACK_QUIET_MS, false))]);
    if (!drained) break;
  }
  return socket.bytesWritten - socket.writableLength;
}

/** Sends `bytes` and reads them back; returns the seconds from the first write to the last byte. */
async function echo(socket: net.Socket): Promise<number> {
  socket.on('error', (error) => fail(new Error(`bulk connection: ${error.message}`)));
  const block = randomBytes(BLOCK_BYTES);
  let received = 0;
  // Done when every byte is back: the connection is not half-closed first, because stunnel
  // was seen to drop the last few hundred KB of the echo when the client half-closed.
  const done = new Promise<void>((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) resolve();
    });
    socket.once('end', () => reject(new Error(`the path closed after ${received} of ${bytes} echoed bytes`)));
  });
  const started = performance.now();
  for (let sent = 0; sent < bytes; sent += BLOCK_BYTES) {
    if (!socket.write(block.subarray(0, Math.min(BLOCK_BYTES, bytes - sent)))) await once(socket, 'drain');
  }
  await done;
  if (received !== bytes) throw new Error(`echoed ${received} bytes for ${bytes} sent`);
  return (performance.now() - started) / 1000;
}

try {
  const stalled = mode === 'stalled' ? await connect() : undefined;
  const stalledBytesTaken = stalled === undefined ? undefined : await fillStalled(stalled);
  const bulk = await connect();
  const seconds = await echo(bulk);
  clearTimeout(overall);
  process.stdout.write(`${JSON.stringify({ bytes, seconds, stalledBytesTaken })}\n`);
  stalled?.destroy();
  bulk.destroy();
} catch (error) {
  fail(error instanceof Error ? error : new Error(String(error)));
}
