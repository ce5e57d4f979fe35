import { once } from 'node:events';
import { SERVICE_NAME_PATTERN } from '../../proto/control.js';
import { parseJoinToken } from '../../proto/tokens.js';
import { DEFAULT_MAX_INBOUND_STREAMS, DEFAULT_MAX_INBOUND_STREAMS_PER_PEER } from '../../sidecar/forward/stream-quota.js';
import { egressConnectorFromEnv } from '../../sidecar/links/http-connect-connector.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { parseHostPort } from '../../sidecar/net/address.js';
import { startSidecar } from '../../sidecar/sidecar.js';
import { controlPlaneUrls, parseDurationMs, parseFlags, required, UsageError } from '../args.js';
import { logFormatHelp, logFormatOption, parseLogFormat } from '../log-format.js';
import { createLogger } from '../logger.js';
import { parseTrafficFlags, trafficFlagOptions, trafficFlagsHelp } from '../traffic-flags.js';
import { sidecarConfigFile } from '../config-schemas.js';
import { watchStopSignals } from '../signals.js';
import { joinTokenInput } from '../token-file.js';
import { parseWorkers, workerPlan, workersHelp, workersOption } from '../workers-flag.js';
import { checkAdminAddress, checkAdvertisable, checkDataDir, checkListenAddresses } from '../startup-checks.js';

export const sidecarHelp = `Usage: trellis sidecar --service NAME --token TOKEN --control-plane URL --listen URL
                       [--app HOST:PORT] [--upstream SERVICE=HOST:PORT]... [--proxy HOST:PORT] [--admin HOST:PORT]
                       [--data-dir DIR] [--advertise URL] [--zone ZONE] [--weight N] [--workers N|auto]
                       [outbound traffic and health flags, below]

Runs a sidecar next to one instance of a service.
  --config FILE.yaml        flag values from a file (keys as the flags, upstreams as a list of
                            {service, address}); flags given here override it
  --service NAME            this instance's service
  --token TOKEN             a join token for NAME (trellis token create); or env TRELLIS_JOIN_TOKEN;
                            not needed when --data-dir holds a valid identity
  --token-file FILE         read the token from FILE instead (mode 0600): other local users can
                            read a --token in the process list
  --control-plane URL       https://HOST:PORT; repeat for several replicas (or TRELLIS_CONTROL_PLANE)
  --listen URL              link listener for other sidecars and this zone's gateways:
                            HOST:PORT or tls://HOST:PORT (mTLS), or wss://HOST:PORT[/PATH]
                            (mTLS inside a WebSocket over HTTPS)
  --app HOST:PORT           the local app that callers of NAME reach
  --upstream SVC=HOST:PORT  a local port whose connections go to service SVC (repeatable)
  --proxy HOST:PORT         a SOCKS5 and HTTP proxy port reaching <service>.mesh (the port in
                            <service>.mesh:PORT is ignored); other names are refused
  --admin HOST:PORT         plain HTTP on loopback: /ready, /metrics, /status (no authentication)
  --admin-allow-remote      let --admin bind an address other hosts reach (refused otherwise)
  --data-dir DIR            keeps the key, certificate and last config across restarts
  --advertise URL           the link address other sidecars dial (default: the bound --listen;
                            required when --listen binds every address, 0.0.0.0 or [::])
  --zone ZONE, --weight N   registered with the endpoint (weight 1..1000, default 1); callers in
                            other zones reach this sidecar through gateways (default zone: default)
  --egress-proxy URL        dial this zone's gateways through an HTTP CONNECT proxy (http://HOST:PORT);
                            default: HTTPS_PROXY when set
${workersHelp}
  --drain-timeout DURATION  on SIGTERM/SIGINT, how long open streams may take to finish (default 30s);
                            a second signal stops at once
${logFormatHelp}
  --drain-delay DURATION    on SIGTERM/SIGINT, how long to wait after deregistering before refusing
                            new streams, so that peers stop picking this endpoint (default 1s)

Inbound limits (streams beyond them get RESET RESOURCE_EXHAUSTED):
  --max-inbound-streams N   inbound streams open at once, from all callers (default ${DEFAULT_MAX_INBOUND_STREAMS})
  --max-inbound-streams-per-peer N  inbound streams open at once from one caller identity, across
                            all its links (default ${DEFAULT_MAX_INBOUND_STREAMS_PER_PEER})${trafficFlagsHelp}

Examples:
  trellis sidecar --service api --token "$TOKEN_API" --control-plane https://127.0.0.1:7400 \\
    --listen 127.0.0.1:7501 --app 127.0.0.1:8080 --admin 127.0.0.1:9501
  trellis sidecar --service web --token "$TOKEN_WEB" --control-plane https://127.0.0.1:7400 \\
    --listen 127.0.0.1:7502 --upstream api=127.0.0.1:9000
  trellis sidecar --service api --data-dir ./api-state --control-plane https://10.0.0.5:7400 \\
    --listen 0.0.0.0:7501 --advertise 10.0.0.7:7501 --app 127.0.0.1:8080`;

export async function sidecarCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    service: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'control-plane': { type: 'string', multiple: true },
    listen: { type: 'string' },
    app: { type: 'string' },
    upstream: { type: 'string', multiple: true },
    proxy: { type: 'string' },
    admin: { type: 'string' },
    'data-dir': { type: 'string' },
    advertise: { type: 'string' },
    zone: { type: 'string' },
    weight: { type: 'string' },
    ...trafficFlagOptions,
    'drain-timeout': { type: 'string' },
    'drain-delay': { type: 'string' },
    'egress-proxy': { type: 'string' },
    'max-inbound-streams': { type: 'string' },
    'max-inbound-streams-per-peer': { type: 'string' },
    ...logFormatOption,
    ...workersOption,
    'admin-allow-remote': { type: 'boolean' },
  }, false, sidecarConfigFile);
  if (values.help === true) {
    process.stdout.write(`${sidecarHelp}\n`);
    return 0;
  }
  const service = required(values.service, '--service');
  if (!SERVICE_NAME_PATTERN.test(service)) throw new UsageError(`--service "${service}" is not a valid service name (lowercase letters, digits and '-', at most 63)`);
  const urls = controlPlaneUrls(values['control-plane']);
  const rawToken = joinTokenInput(values, 'TRELLIS_JOIN_TOKEN');
  const listen = parseLinkUrl(required(values.listen, '--listen'), '--listen');
  if (values.zone !== undefined && !SERVICE_NAME_PATTERN.test(values.zone)) {
    throw new UsageError(`--zone "${values.zone}" is not a valid zone name (lowercase letters, digits and '-', at most 63)`);
  }
  const upstreams = (values.upstream ?? []).map((spec) => parseUpstream(spec));
  const weight = values.weight === undefined ? 1 : Number(values.weight);
  if (!Number.isInteger(weight) || weight < 1 || weight > 1000) throw new UsageError(`--weight must be a whole number 1..1000, got "${values.weight}"`);
  const traffic = parseTrafficFlags(values, values.app !== undefined);
  const drainDeadlineMs = values['drain-timeout'] === undefined ? undefined : parseDurationMs(values['drain-timeout'], '--drain-timeout');
  const drainPropagationMs = values['drain-delay'] === undefined ? undefined : parseDurationMs(values['drain-delay'], '--drain-delay');
  const logFormat = parseLogFormat(values['log-format'], process.stderr.isTTY === true);
  const admin = values.admin === undefined ? undefined : parseHostPort(values.admin, '--admin');
  checkAdminAddress(admin, values['admin-allow-remote'] === true);
  checkAdvertisable(listen, values.advertise === undefined ? undefined : parseLinkUrl(values.advertise, '--advertise'));
  const proxy = values.proxy === undefined ? undefined : parseHostPort(values.proxy, '--proxy');
  const workers = parseWorkers(values.workers);
  // Before joining: a wrong flag costs no certificate, and its error names the flag.
  if (values['data-dir'] !== undefined) checkDataDir(values['data-dir']);
  await checkListenAddresses([
    { flag: '--listen', ...listen },
    ...(admin === undefined ? [] : [{ flag: '--admin', ...admin }]),
    ...(proxy === undefined ? [] : [{ flag: '--proxy', ...proxy }]),
    ...upstreams.map((upstream) => ({ flag: `--upstream ${upstream.service}`, ...upstream.local })),
  ]);
  const logName = `sidecar:${service}`;
  const logger = createLogger(logName, logFormat);
  const sidecar = await startSidecar({
    service,
    controlPlaneUrls: urls,
    token: rawToken === undefined ? undefined : { raw: rawToken, parsed: parseJoinToken(rawToken) },
    listen,
    advertise: values.advertise === undefined ? undefined : (parseLinkUrl(values.advertise, '--advertise'), values.advertise),
    app: values.app === undefined ? undefined : parseHostPort(values.app, '--app'),
    upstreams,
    proxy,
    admin,
    dataDir: values['data-dir'],
    zone: values.zone,
    weight,
    egress: egressConnectorFromEnv(values['egress-proxy'], process.env),
    workers: workerPlan(workers, { logName, logFormat, egressProxy: values['egress-proxy'] }),
    ...traffic,
    inboundStreams: {
      maxStreams: optionalCount(values['max-inbound-streams'], '--max-inbound-streams'),
      maxStreamsPerPeer: optionalCount(values['max-inbound-streams-per-peer'], '--max-inbound-streams-per-peer'),
    },
    logger,
  });
  if (!sidecar.isReady()) await once(sidecar.config, 'version');
  const lines = [`sidecar ${service} ready: links on ${sidecar.linkAddress}`];
  for (const upstream of sidecar.upstreams) lines.push(`  upstream ${upstream.service} on ${upstream.address}`);
  if (sidecar.proxyAddress !== undefined) lines.push(`  proxy on ${sidecar.proxyAddress} (SOCKS5 and HTTP, for <service>.mesh)`);
  if (sidecar.adminAddress !== undefined) lines.push(`  admin on http://${sidecar.adminAddress}`);
  // Caught before the ready lines, which tell a supervisor it may signal us now.
  const signals = watchStopSignals(logger);
  process.stdout.write(`${lines.join('\n')}\n`);
  await signals.first;
  // A second signal while draining means "now".
  signals.onSecond(() => sidecar.close());
  await sidecar.drain({ deadlineMs: drainDeadlineMs, propagationMs: drainPropagationMs });
  return 0;
}

/** The largest stream limit a flag takes: far beyond any process's descriptors, so mostly a typo catcher. */
const MAX_INBOUND_STREAMS_FLAG = 1_000_000;

function optionalCount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < 1 || value > MAX_INBOUND_STREAMS_FLAG) throw new UsageError(`${flag} must be a whole number 1..${MAX_INBOUND_STREAMS_FLAG}, got "${text}"`);
  return value;
}

function parseUpstream(spec: string): { service: string; local: { host: string; port: number } } {
  const separator = spec.indexOf('=');
  if (separator <= 0) throw new UsageError(`--upstream must be SERVICE=HOST:PORT, got "${spec}"`);
  const service = spec.slice(0, separator);
  if (!SERVICE_NAME_PATTERN.test(service)) throw new UsageError(`--upstream: "${service}" is not a valid service name`);
  return { service, local: parseHostPort(spec.slice(separator + 1), `--upstream ${service}`) };
}
