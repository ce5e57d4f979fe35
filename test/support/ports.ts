import { once } from 'node:events';
import net from 'node:net';

/**
 * A loopback port that was free a moment ago, for programs that take a port number and cannot
 * be told to pick one (port 0) and report it.
 */
export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
