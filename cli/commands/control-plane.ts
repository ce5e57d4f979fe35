import { startControlPlane } from '../../control-plane/index.js';
import { parseHostPort } from '../../sidecar/net/address.js';
import { parseDurationMs, parseFlags, required, UsageError } from '../args.js';
import { logFormatHelp, logFormatOption, parseLogFormat } from '../log-format.js';
import { createLogger } from '../logger.js';
import { controlPlaneConfigFile } from '../config-schemas.js';
import { watchStopSignals } from '../signals.js';

export const controlPlaneHelp = `Usage: trellis control-plane --data-dir DIR [--listen HOST:PORT] [--trust-domain NAME]
                             [--cert-ttl DURATION] [--lease-ttl DURATION]
                             [--store file|etcd --etcd URL[,URL...] --etcd-encryption-key-file FILE]

Runs the control plane: certificate authority, service registry and config source.
Serves HTTPS and WSS at https://HOST:PORT and writes the admin token to DIR/admin.token.
  --config FILE.yaml    flag values from a file (keys as the flags); flags given here override it
  --data-dir DIR        where the CA, the admin token and the state are kept (created if missing)
  --listen HOST:PORT    default 127.0.0.1:7400
  --trust-domain NAME   default trellis.local (only used when DIR is new)
  --cert-ttl DURATION   lifetime of sidecar certificates; default 24h
  --lease-ttl DURATION  how long an endpoint outlives its sidecar's session; default 15s
  --store file|etcd     where the state lives: a file in DIR (default), or etcd, shared by
                        every control-plane replica started with the same --etcd
  --etcd URL[,URL...]   etcd client URLs, such as http://10.0.0.5:2379 (with --store etcd)
  --etcd-encryption-key-file FILE
                        32-byte key (64 hex digits; mode 0600) that encrypts the CA key and the
                        admin token in etcd; the same file on every replica
${logFormatHelp}

Examples:
  trellis control-plane --data-dir ./cp-data
  trellis control-plane --data-dir /var/lib/trellis --listen 10.0.0.5:7400 --cert-ttl 12h
  openssl rand -hex 32 > etcd.key && chmod 600 etcd.key
  trellis control-plane --data-dir ./cp1 --listen 10.0.0.1:7400 --store etcd \\
    --etcd http://10.0.0.5:2379 --etcd-encryption-key-file ./etcd.key`;

export async function controlPlaneCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    'data-dir': { type: 'string' },
    listen: { type: 'string' },
    'trust-domain': { type: 'string' },
    'cert-ttl': { type: 'string' },
    'lease-ttl': { type: 'string' },
    store: { type: 'string' },
    etcd: { type: 'string' },
    'etcd-encryption-key-file': { type: 'string' },
    ...logFormatOption,
  }, false, controlPlaneConfigFile);
  if (values.help === true) {
    process.stdout.write(`${controlPlaneHelp}\n`);
    return 0;
  }
  const dataDir = required(values['data-dir'], '--data-dir');
  const listen = parseHostPort(values.listen ?? '127.0.0.1:7400', '--listen');
  const leafTtlMs = values['cert-ttl'] === undefined ? undefined : parseDurationMs(values['cert-ttl'], '--cert-ttl');
  const leaseTtlMs = values['lease-ttl'] === undefined ? undefined : parseDurationMs(values['lease-ttl'], '--lease-ttl');
  const etcd = etcdOptions(values.store, values.etcd, values['etcd-encryption-key-file']);
  const logger = createLogger('control-plane', parseLogFormat(values['log-format'], process.stderr.isTTY === true));
  const controlPlane = await startControlPlane({
    dataDir,
    listenHost: listen.host,
    listenPort: listen.port,
    trustDomain: values['trust-domain'],
    leafTtlMs,
    leaseTtlMs,
    etcd,
    logger,
  });
  // Caught before the lines that tell a supervisor (or a test) it may signal us now.
  const signals = watchStopSignals(logger);
  process.stdout.write(`control plane listening on ${controlPlane.url}\nadmin token written to ${controlPlane.adminTokenPath}\n`);
  const signal = await signals.first;
  logger.info({ signal }, 'shutting down');
  await controlPlane.close();
  return 0;
}

/** `--store`, `--etcd` and `--etcd-encryption-key-file`, checked together. */
function etcdOptions(store: string | undefined, urls: string | undefined, keyFile: string | undefined): { hosts: string[]; encryptionKeyFile: string } | undefined {
  if (store !== undefined && store !== 'file' && store !== 'etcd') throw new UsageError(`--store must be file or etcd, got "${store}"`);
  if (store !== 'etcd') {
    if (urls !== undefined || keyFile !== undefined) throw new UsageError('--etcd and --etcd-encryption-key-file need --store etcd');
    return undefined;
  }
  const hosts = required(urls, '--etcd')
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
  for (const host of hosts) {
    let url: URL | undefined;
    try {
      url = new URL(host);
    } catch {
      url = undefined;
    }
    if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.port === '' || url.pathname !== '/') {
      throw new UsageError(`--etcd must list etcd client URLs like http://127.0.0.1:2379, got "${host}"`);
    }
  }
  if (hosts.length === 0) throw new UsageError('missing --etcd');
  return { hosts, encryptionKeyFile: required(keyFile, '--etcd-encryption-key-file') };
}
