/**
 * stunnel pair: the client side (client mode) accepts plain TCP and connects with TLS 1.3 and
 * a client certificate; the server side requires and verifies that certificate
 * (`requireCert`, `verifyChain`) and forwards plain TCP to the app.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { LOOPBACK, pickFreePort, waitForPort } from '../net.js';
import { toolPath } from '../system.js';
import type { Contender, ContenderDeps, RunningContender } from './contender.js';
import { PROXY_START_TIMEOUT_MS } from './contender.js';

export function createStunnelContender(deps: ContenderDeps): Contender {
  const stunnel = toolPath(deps.tools, 'stunnel4');
  return {
    id: 'stunnel',
    close: () => Promise.resolve(),
    async start(appPort: number): Promise<RunningContender> {
      const dir = await mkdtemp(join(deps.workDir, 'stunnel-'));
      const [clientPort, serverPort] = [await pickFreePort(), await pickFreePort()];
      const { pki } = deps;
      const serverConf = join(dir, 'server.conf');
      const clientConf = join(dir, 'client.conf');
      await writeFile(
        serverConf,
        stunnelConfig([
          `accept = ${LOOPBACK}:${serverPort}`,
          `connect = ${LOOPBACK}:${appPort}`,
          `cert = ${pki.serverCert}`,
          `key = ${pki.serverKey}`,
          `CAfile = ${pki.caCert}`,
          'requireCert = yes',
          'verifyChain = yes',
        ]),
      );
      await writeFile(
        clientConf,
        stunnelConfig([
          'client = yes',
          `accept = ${LOOPBACK}:${clientPort}`,
          `connect = ${LOOPBACK}:${serverPort}`,
          `cert = ${pki.clientCert}`,
          `key = ${pki.clientKey}`,
          `CAfile = ${pki.caCert}`,
          'verifyChain = yes',
          // The server's name as well as its chain, as the other contenders check an identity.
          'checkHost = localhost',
        ]),
      );
      const server = deps.supervisor.spawn('stunnel server side', stunnel, [serverConf], { manyFiles: true });
      const client = deps.supervisor.spawn('stunnel client side', stunnel, [clientConf], { manyFiles: true });
      const stop = async (): Promise<void> => {
        await Promise.all([client.stop(), server.stop()]);
      };
      try {
        await waitForPort(serverPort, PROXY_START_TIMEOUT_MS, 'stunnel server side');
        await waitForPort(clientPort, PROXY_START_TIMEOUT_MS, 'stunnel client side');
      } catch (error) {
        await stop();
        throw new Error(`${(error as Error).message}: ${server.lastWords()} ${client.lastWords()}`);
      }
      return { clientPort, sides: { client, server }, serverSidePort: serverPort, stop };
    },
  };
}

/** A one-service configuration, in the foreground, logging warnings to stderr. */
function stunnelConfig(serviceLines: string[]): string {
  return [
    'foreground = yes',
    'pid =',
    'debug = warning',
    // Same as the other contenders: no Nagle delay on either side.
    'socket = l:TCP_NODELAY=1',
    'socket = r:TCP_NODELAY=1',
    '[bench]',
    'sslVersionMin = TLSv1.3',
    ...serviceLines,
    '',
  ].join('\n');
}
