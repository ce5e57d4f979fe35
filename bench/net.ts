/** Loopback ports for tools that cannot listen on port 0 and tell which port they got. */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';

export const LOOPBACK = '127.0.0.1';
const PORT_POLL_INTERVAL_MS = 50;

/**
 * A port that was free a moment ago. stunnel, HAProxy, redis and iperf3 need a port number in
 * their configuration, so the harness asks the kernel for one and hands it over; the short race
 * with other programs is acceptable on a benchmark machine.
 */
export async function pickFreePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, LOOPBACK);
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Resolves once a socket listens on 127.0.0.1:`port`. It reads the kernel's socket table rather
 * than connecting: a probe connection would show up in the proxies' logs (and iperf3's) as a
 * failed handshake, hiding the real ones. @throws Error after `timeoutMs`.
 */
export async function waitForPort(port: number, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await isListening(port)) return;
    await new Promise((resolve) => setTimeout(resolve, PORT_POLL_INTERVAL_MS));
  }
  throw new Error(`${what} is not listening on ${LOOPBACK}:${port} after ${timeoutMs} ms`);
}

/** State code of a listening socket in /proc/net/tcp. */
const TCP_LISTEN_STATE = '0A';

async function isListening(port: number): Promise<boolean> {
  // Local addresses there are little-endian hex: 127.0.0.1:port is 0100007F:PPPP.
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const table = await readFile('/proc/net/tcp', 'utf8');
  return table.split('\n').some((line) => {
    const fields = line.trim().split(/\s+/);
    return fields[1] === local && fields[3] === TCP_LISTEN_STATE;
  });
}

/**
 * Sends `payload` through `port` and resolves once it has come back whole: proves a path through
 * a proxy pair to an echo app works end to end.
 */
export function echoOnce(port: number, payload: Buffer, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: LOOPBACK, port });
    let received = 0;
    const timer = setTimeout(() => finish(new Error(`no echo through port ${port} within ${timeoutMs} ms`)), timeoutMs);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error === undefined) resolve();
      else reject(error);
    };
    socket.once('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= payload.length) finish();
    });
    socket.once('error', (error) => finish(error));
    socket.once('close', () => {
      if (received < payload.length) finish(new Error(`connection through port ${port} closed after ${received} of ${payload.length} echoed bytes`));
    });
  });
}
