/**
 * HAProxy pair, TCP mode: the client side's backend server line dials the server side with TLS
 * 1.3, a client certificate and `verify required`; the server side's bind demands and
 * verifies the client certificate (`verify required`) and forwards plain TCP to the app.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOOPBACK, pickFreePort, waitForPort } from '../net.js';
import { toolPath } from '../system.js';
import type { Contender, ContenderDeps, RunningContender } from './contender.js';
import { PROXY_START_TIMEOUT_MS } from './contender.js';

/** Descriptors HAProxy keeps for itself (listeners, pollers, logs) besides two per connection. */
const RESERVED_FILES = 200;

export function createHaproxyContender(deps: ContenderDeps): Contender {
  const haproxy = toolPath(deps.tools, 'haproxy');
  // Each proxied connection holds two descriptors (accepted and dialled); HAProxy refuses to
  // start with a maxconn its open-files limit cannot carry.
  const maxConnections = Math.floor((deps.openFilesLimit - RESERVED_FILES) / 2);
  return {
    id: 'haproxy',
    close: () => Promise.resolve(),
    async start(appPort: number): Promise<RunningContender> {
      const dir = await mkdtemp(join(deps.workDir, 'haproxy-'));
      const [clientPort, serverPort] = [await pickFreePort(), await pickFreePort()];
      const { pki } = deps;
      const serverConf = join(dir, 'server.cfg');
      const clientConf = join(dir, 'client.cfg');
      await writeFile(
        serverConf,
        haproxyConfig(maxConnections, [
          'frontend mtls_in',
          `  bind ${LOOPBACK}:${serverPort} ssl crt ${pki.serverPem} ca-file ${pki.caCert} verify required`,
          '  default_backend app',
          'backend app',
          `  server app ${LOOPBACK}:${appPort}`,
        ]),
      );
      await writeFile(
        clientConf,
        haproxyConfig(maxConnections, [
          'frontend plain_in',
          `  bind ${LOOPBACK}:${clientPort}`,
          '  default_backend mtls_out',
          'backend mtls_out',
          `  server peer ${LOOPBACK}:${serverPort} ssl crt ${pki.clientPem} ca-file ${pki.caCert} verify required verifyhost localhost`,
        ]),
      );
      // -db: stay in the foreground, so the supervisor owns the process.
      const server = deps.supervisor.spawn('haproxy server side', haproxy, ['-db', '-f', serverConf], { manyFiles: true });
      const client = deps.supervisor.spawn('haproxy client side', haproxy, ['-db', '-f', clientConf], { manyFiles: true });
      const stop = async (): Promise<void> => {
        await Promise.all([client.stop(), server.stop()]);
      };
      try {
        await waitForPort(serverPort, PROXY_START_TIMEOUT_MS, 'haproxy server side');
        await waitForPort(clientPort, PROXY_START_TIMEOUT_MS, 'haproxy client side');
      } catch (error) {
        await stop();
        throw new Error(`${(error as Error).message}: ${server.lastWords()} ${client.lastWords()}`);
      }
      return { clientPort, sides: { client, server }, serverSidePort: serverPort, stop };
    },
  };
}

function haproxyConfig(maxConnections: number, proxyLines: string[]): string {
  return [
    'global',
    `  maxconn ${maxConnections}`,
    '  ssl-default-bind-options ssl-min-ver TLSv1.3',
    '  ssl-default-server-options ssl-min-ver TLSv1.3',
    'defaults',
    '  mode tcp',
    `  maxconn ${maxConnections}`,
    '  timeout connect 10s',
    // Long enough that held idle connections are not cut during a workload.
    '  timeout client 10m',
    '  timeout server 10m',
    ...proxyLines,
    '',
  ].join('\n');
}
