import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SidecarMetrics } from './metrics/metrics.js';
import type { HostPort } from './net/address.js';
import { formatHostPort } from './net/address.js';

export interface AdminServerInit {
  listen: HostPort;
  /** What `/metrics` shows. */
  metrics: Pick<SidecarMetrics, 'render'>;
  /** Whether the sidecar has its certificate, its config and all its listeners. */
  isReady(): boolean;
  /** A JSON summary for people and scripts (`GET /status`). */
  status(): unknown;
}

export interface AdminServer {
  readonly address: string;
  close(): Promise<void>;
}

/** The version of the package this process runs (package.json, beside the compiled tree). */
function runningVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * Plain HTTP on loopback: `/ready`, `/metrics` (Prometheus text) and `/status` (JSON, with the
 * running `version` first, so that `trellis status` can tell versions apart).
 */
export async function startAdminServer(init: AdminServerInit): Promise<AdminServer> {
  const version = runningVersion();
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/ready') {
      const ready = init.isReady();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      init.metrics.render().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    } else if (path === '/status') {
      // A sidecar with workers asks them first, so the status may come later.
      Promise.resolve(init.status()).then(
        (status) => res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ version, ...(status as object) }, null, 2)}\n`),
        (error: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${error.message}\n`),
      );
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /ready, /metrics or /status\n');
    }
  });
  server.listen(init.listen.port, init.listen.host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([error]) => Promise.reject(error as Error))]);
  const { port } = server.address() as AddressInfo;
  return {
    address: formatHostPort(init.listen.host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
