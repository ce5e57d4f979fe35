import { once } from 'node:events';
import { SERVICE_NAME_PATTERN } from '../../proto/control.js';
import { parseJoinToken } from '../../proto/tokens.js';
import type { HostPort } from '../../sidecar/net/address.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { parseHostPort } from '../../sidecar/net/address.js';
import type { Sidecar } from '../../sidecar/sidecar.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { controlPlaneUrls, parseFlags, required, UsageError } from '../args.js';
import { logFormatHelp, logFormatOption, parseLogFormat } from '../log-format.js';
import { createFileLogger, createLogger } from '../logger.js';
import { runConfigFile } from '../config-schemas.js';
import { exitCodeForSignal, runChildCommand, SignalRelay } from '../run-child.js';
import { meshEnvironment, upstreamVariableName } from '../run-env.js';
import { joinTokenInput } from '../token-file.js';
import { parseWorkers, workerPlan, workersHelp, workersOption } from '../workers-flag.js';
import { checkAdminAddress, checkAdvertisable, checkDataDir, checkListenAddresses } from '../startup-checks.js';

export const runHelp = `Usage: trellis run --service NAME --token TOKEN --control-plane URL [--app-port P]
                   [--upstream SERVICE[=HOST:PORT]]... [--listen HOST:PORT] [--advertise HOST:PORT]
                   [--admin HOST:PORT] [--data-dir DIR] [--log-file FILE] [--workers N|auto]
                   [--config FILE.yaml]
                   -- CMD [ARGS...]

Runs CMD next to its own sidecar: starts the sidecar, waits until it is ready, runs CMD with
the mesh in its environment, passes SIGINT, SIGTERM and SIGHUP on, and exits with CMD's status
(128 + the signal number when a signal killed it; 127 when CMD is not found).
  --config FILE.yaml        flag values from a file (keys as the flags, upstreams as a list of
                            {service, address?}); flags given here override it
  --service NAME            CMD's service
  --token TOKEN             a join token for NAME; or env TRELLIS_JOIN_TOKEN (not passed to CMD)
  --token-file FILE         read the token from FILE instead (mode 0600): other local users can
                            read a --token in the process list
  --control-plane URL       https://HOST:PORT; repeat for several replicas (or TRELLIS_CONTROL_PLANE)
  --app-port P              CMD listens on 127.0.0.1:P; callers of NAME reach it there
  --upstream SVC[=H:P]      a local port to service SVC (default: a free port on 127.0.0.1);
                            CMD gets TRELLIS_UPSTREAM_<SVC>=host:port (upper case, '-' as '_')
  --listen HOST:PORT        mTLS link listener for other sidecars (default 127.0.0.1:0)
  --advertise HOST:PORT     the link address other sidecars dial (default: the bound --listen)
  --admin HOST:PORT         the sidecar's admin endpoint: /ready, /metrics, /status (loopback only
                            unless --admin-allow-remote)
  --data-dir DIR            keeps the key, certificate and last config across restarts
  --log-file FILE           the sidecar's logs go to FILE (appended, JSON lines) instead of stderr
${logFormatHelp}
${workersHelp}

CMD also gets ALL_PROXY=socks5h://127.0.0.1:PORT, HTTP_PROXY and HTTPS_PROXY=http://127.0.0.1:PORT
(and lower-case twins): a proxy port that reaches <service>.mesh and refuses other names.
NO_PROXY keeps its entries and adds localhost,127.0.0.1,::1. Stdout is CMD's alone.

Examples:
  trellis run --service web --token "$TOKEN_WEB" --control-plane https://127.0.0.1:7400 \\
    --upstream api -- curl -s http://api.mesh/
  trellis run --service api --token "$TOKEN_API" --control-plane https://127.0.0.1:7400 \\
    --app-port 8080 -- python3 -m http.server 8080 --bind 127.0.0.1
  trellis run --config web.yaml -- curl -s http://api.mesh/`;

const LOOPBACK_ANY_PORT: HostPort = { host: '127.0.0.1', port: 0 };
/**
 * How long the sidecar may drain once the command has ended. Its connections died with it, so
 * draining is mostly the deregistration; no wait for it to propagate, as the app is gone anyway.
 */
const DRAIN_AFTER_COMMAND = { propagationMs: 0, deadlineMs: 5_000 };

export async function runCommand(argv: string[]): Promise<number> {
  const separator = argv.indexOf('--');
  const { values } = parseFlags(separator === -1 ? argv : argv.slice(0, separator), {
    service: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'control-plane': { type: 'string', multiple: true },
    'app-port': { type: 'string' },
    upstream: { type: 'string', multiple: true },
    listen: { type: 'string' },
    advertise: { type: 'string' },
    admin: { type: 'string' },
    'data-dir': { type: 'string' },
    'log-file': { type: 'string' },
    ...logFormatOption,
    ...workersOption,
    'admin-allow-remote': { type: 'boolean' },
  }, false, runConfigFile);
  if (values.help === true) {
    process.stdout.write(`${runHelp}\n`);
    return 0;
  }
  const [command, ...commandArgs] = separator === -1 ? [] : argv.slice(separator + 1);
  if (command === undefined || command === '') throw new UsageError('missing the command to run: trellis run [flags] -- CMD [ARGS...]');
  const service = required(values.service, '--service');
  if (!SERVICE_NAME_PATTERN.test(service)) throw new UsageError(`--service "${service}" is not a valid service name (lowercase letters, digits and '-', at most 63)`);
  const urls = controlPlaneUrls(values['control-plane']);
  const rawToken = joinTokenInput(values, 'TRELLIS_JOIN_TOKEN');
  const upstreams = parseUpstreams(values.upstream ?? []);
  const appPort = values['app-port'] === undefined ? undefined : parseAppPort(values['app-port']);
  const listen = parseLinkUrl(values.listen ?? '127.0.0.1:0', '--listen');
  const admin = values.admin === undefined ? undefined : parseHostPort(values.admin, '--admin');
  checkAdminAddress(admin, values['admin-allow-remote'] === true);
  checkAdvertisable(listen, values.advertise === undefined ? undefined : parseLinkUrl(values.advertise, '--advertise'));
  const workers = parseWorkers(values.workers);
  if (values['data-dir'] !== undefined) checkDataDir(values['data-dir']);
  await checkListenAddresses([
    { flag: '--listen', ...listen },
    ...(admin === undefined ? [] : [{ flag: '--admin', ...admin }]),
    ...upstreams.map((upstream) => ({ flag: `--upstream ${upstream.service}`, ...upstream.local })),
  ]);
  const logName = `sidecar:${service}`;
  const logFormat = parseLogFormat(values['log-format'], process.stderr.isTTY === true);
  const logger = values['log-file'] === undefined ? createLogger(logName, logFormat) : createFileLogger(logName, values['log-file']);

  // Caught from the start: a signal while the sidecar starts ends the run cleanly, not half-way.
  const signals = new SignalRelay();
  // Set once the sidecar exists, so that it is closed however the run ends (unless it drained).
  const running: { sidecar?: Sidecar } = {};
  try {
    const starting = startSidecar({
      service,
      controlPlaneUrls: urls,
      token: rawToken === undefined ? undefined : { raw: rawToken, parsed: parseJoinToken(rawToken) },
      listen,
      advertise: values.advertise === undefined ? undefined : (parseLinkUrl(values.advertise, '--advertise'), values.advertise),
      app: appPort === undefined ? undefined : { host: '127.0.0.1', port: appPort },
      upstreams,
      proxy: LOOPBACK_ANY_PORT,
      admin,
      dataDir: values['data-dir'],
      workers: workerPlan(workers, { logName, logFormat, ...(values['log-file'] === undefined ? {} : { logFile: values['log-file'] }) }),
      logger,
    }).then(async (started) => {
      running.sidecar = started;
      if (!started.isReady()) await once(started.config, 'version');
      return started;
    });
    const ready = await Promise.race([starting, signals.caught]);
    if (typeof ready === 'string') return exitCodeForSignal(ready);
    const proxyAddress = ready.proxyAddress ?? '';
    const bound = ready.upstreams.map((upstream) => ({ service: upstream.service, address: upstream.address }));
    logger.info({ proxy: proxyAddress, upstreams: bound, links: ready.linkAddress, command }, 'sidecar ready; starting the command');
    const env = meshEnvironment({ inherited: process.env, upstreams: bound, proxyAddress });
    const exitCode = await runChildCommand(command, commandArgs, env, signals);
    delete running.sidecar;
    await ready.drain(DRAIN_AFTER_COMMAND);
    return exitCode;
  } finally {
    signals.dispose();
    await running.sidecar?.close();
  }
}

/** `SERVICE` (a free loopback port) or `SERVICE=HOST:PORT`, each service once. */
function parseUpstreams(specs: string[]): { service: string; local: HostPort }[] {
  const seen = new Map<string, string>();
  return specs.map((spec) => {
    const separator = spec.indexOf('=');
    const service = separator === -1 ? spec : spec.slice(0, separator);
    if (!SERVICE_NAME_PATTERN.test(service)) throw new UsageError(`--upstream: "${service}" is not a valid service name`);
    const variable = upstreamVariableName(service);
    if (seen.has(variable)) throw new UsageError(`--upstream ${service} is given twice`);
    seen.set(variable, service);
    return { service, local: separator === -1 ? LOOPBACK_ANY_PORT : parseHostPort(spec.slice(separator + 1), `--upstream ${service}`) };
  });
}

function parseAppPort(text: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) throw new UsageError(`--app-port must be a port 1..65535, got "${text}"`);
  return port;
}
