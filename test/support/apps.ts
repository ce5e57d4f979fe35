import { createHash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';

/** A small TCP app for tests: a real server on 127.0.0.1 port 0. */
export interface TestApp {
  readonly address: string;
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

async function listen(server: net.Server, counter: { accepted: number }, requestedPort = 0): Promise<TestApp> {
  server.listen(requestedPort, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    counter.accepted += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return {
    address: `127.0.0.1:${port}`,
    port,
    get accepted() {
      return counter.accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Echoes every byte back and half-closes when the client does. */
export function startEchoApp(): Promise<TestApp> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  return listen(server, { accepted: 0 });
}

/**
 * Answers each connection with `name\n`, which tells which endpoint served it; then echoes, or
 * with `closeFirst` half-closes at once (so the app side closes first). `port` (default 0)
 * brings an app back on the port it had.
 */
export function startNamedApp(name: string, options: { closeFirst?: boolean; port?: number } = {}): Promise<TestApp> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    if (options.closeFirst === true) {
      socket.end(`${name}\n`);
      socket.resume();
      return;
    }
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  return listen(server, { accepted: 0 }, options.port);
}

/**
 * Answers each connection with the sha256 of everything it received (sent once the client
 * half-closes), after streaming `sendBytes` of its own random data; proves both directions
 * and both half-closes.
 */
export function startSinkSourceApp(sendBytes: Buffer): Promise<TestApp> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    const hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => hash.update(chunk));
    socket.on('end', () => socket.end(hash.digest('hex')));
    socket.write(sendBytes);
  });
  return listen(server, { accepted: 0 });
}

/** Connects to `port`, resolving once connected. */
export async function connect(port: number, options: Omit<net.TcpNetConnectOpts, 'port'> = {}): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...options });
  await once(socket, 'connect');
  return socket;
}

/** Reads everything until the peer half-closes (or the socket closes). */
export function readAll(socket: net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks)));
    socket.once('error', reject);
    socket.once('close', () => resolve(Buffer.concat(chunks)));
  });
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
