/**
 * A throwaway PKI for the peer proxies (stunnel, HAProxy): one CA, a server and a client leaf,
 * shaped like Trellis's own (an RSA-2048 root, EC P-256 leaves), so that every contender pays
 * the same handshake cost.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessSupervisor } from './supervisor.js';

/** Files of the throwaway PKI; `*Pem` bundles hold certificate then key (HAProxy's `crt`). */
export interface BenchPki {
  caCert: string;
  serverCert: string;
  serverKey: string;
  serverPem: string;
  clientCert: string;
  clientKey: string;
  clientPem: string;
}

const OPENSSL_TIMEOUT_MS = 30_000;
const VALIDITY_DAYS = '2';

/** Makes the CA and both leaves in `dir` with the openssl command line. */
export async function createBenchPki(supervisor: ProcessSupervisor, openssl: string, dir: string): Promise<BenchPki> {
  const file = (name: string): string => join(dir, name);
  const run = async (args: string[]): Promise<void> => {
    const result = await supervisor.run('openssl', openssl, args, OPENSSL_TIMEOUT_MS);
    if (result.code !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr.trim()}`);
  };
  await run([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', VALIDITY_DAYS,
    '-keyout', file('ca.key'), '-out', file('ca.crt'), '-subj', '/CN=bench-ca',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const leaf = async (name: string, usage: string): Promise<void> => {
    await run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-sha256', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=bench-${name}`]);
    await writeFile(file(`${name}.ext`), `subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=${usage}\nkeyUsage=critical,digitalSignature\n`);
    await run([
      'x509', '-req', '-sha256', '-days', VALIDITY_DAYS, '-in', file(`${name}.csr`), '-CA', file('ca.crt'), '-CAkey', file('ca.key'),
      '-CAcreateserial', '-out', file(`${name}.crt`), '-extfile', file(`${name}.ext`),
    ]);
    const bundle = (await readFile(file(`${name}.crt`), 'utf8')) + (await readFile(file(`${name}.key`), 'utf8'));
    await writeFile(file(`${name}.pem`), bundle, { mode: 0o600 });
  };
  await leaf('server', 'serverAuth');
  await leaf('client', 'clientAuth');
  return {
    caCert: file('ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    serverPem: file('server.pem'),
    clientCert: file('client.crt'),
    clientKey: file('client.key'),
    clientPem: file('client.pem'),
  };
}
