import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';

/** An HTTP app for tests: a real server on 127.0.0.1 port 0 that describes each request it gets. */
export interface HttpTestApp {
  readonly address: string;
  readonly port: number;
  /** TCP connections accepted so far. */
  readonly accepted: number;
  close(): Promise<void>;
}

/**
 * Answers every request with `<name> <METHOD> <path> host=<Host> connection=<Connection>
 * body=<body>` as text, so a test sees exactly what reached the app after the mesh.
 */
export async function startHttpApp(name: string): Promise<HttpTestApp> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const { host = '', connection = '' } = request.headers;
      response.setHeader('Content-Type', 'text/plain');
      response.end(`${name} ${request.method ?? ''} ${request.url ?? ''} host=${host} connection=${connection} body=${Buffer.concat(chunks).toString()}`);
    });
  });
  server.on('connection', (socket: net.Socket) => {
    accepted += 1;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    get accepted() {
      return accepted;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
