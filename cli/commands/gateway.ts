import { once } from 'node:events';
import { SERVICE_NAME_PATTERN } from '../../proto/control.js';
import { parseGatewayToken } from '../../proto/tokens.js';
import { startGateway } from '../../sidecar/gateway/gateway.js';
import { egressConnectorFromEnv } from '../../sidecar/links/http-connect-connector.js';
import { parseLinkUrl } from '../../sidecar/links/link-url.js';
import { parseHostPort } from '../../sidecar/net/address.js';
import { controlPlaneUrls, parseDurationMs, parseFlags, required, UsageError } from '../args.js';
import { logFormatHelp, logFormatOption, parseLogFormat } from '../log-format.js';
import { createLogger } from '../logger.js';
import { gatewayConfigFile } from '../config-schemas.js';
import { watchStopSignals } from '../signals.js';
import { joinTokenInput } from '../token-file.js';
import { checkAdminAddress, checkAdvertisable, checkDataDir, checkListenAddresses } from '../startup-checks.js';

export const gatewayHelp = `Usage: trellis gateway --zone ZONE --name NAME --token TOKEN --control-plane URL --listen URL...
                       [--advertise URL]... [--admin HOST:PORT] [--data-dir DIR] [--egress-proxy URL]

Runs a gateway: it relays tunnels between the sidecars of its zone and the gateways of other
zones. Tunnels carry the end sidecars' own mutual TLS: the gateway reads none of it.
  --config FILE.yaml        flag values from a file (keys as the flags); flags given here override it
  --zone ZONE               the zone this gateway serves
  --name NAME               this gateway's name in its zone (default: the token's)
  --token TOKEN             a gateway token (trellis token create --gateway NAME --zone ZONE); or env
                            TRELLIS_GATEWAY_TOKEN; not needed when --data-dir holds a valid identity
  --token-file FILE         read the token from FILE instead (mode 0600): other local users can
                            read a --token in the process list
  --control-plane URL       https://HOST:PORT; repeat for several replicas (or TRELLIS_CONTROL_PLANE)
  --listen URL              a link listener (repeatable): HOST:PORT or tls://HOST:PORT (mTLS), or
                            wss://HOST:PORT[/PATH] (mTLS inside a WebSocket over HTTPS)
  --advertise URL           an address sidecars and other gateways dial, tried in order
                            (repeatable; default: the bound --listen URLs). A gateway nobody can
                            reach (behind NAT or a firewall) still works: it dials out to the
                            gateways of other zones and takes its traffic over those links
  --admin HOST:PORT         plain HTTP on loopback: /ready, /metrics, /status (no authentication)
  --admin-allow-remote      let --admin bind an address other hosts reach (refused otherwise)
  --data-dir DIR            keeps the key, certificate and last config across restarts
  --egress-proxy URL        dial other gateways through this HTTP CONNECT proxy (http://HOST:PORT);
                            default: HTTPS_PROXY when set
  --connect-timeout D       time to dial a link, TCP and TLS (default 5s)
  --drain-timeout D         on SIGTERM/SIGINT, how long the tunnels it carries may take to finish
                            (default 30s): their sidecars open new ones through other gateways at
                            once and let open streams finish on the old; a second signal stops now
${logFormatHelp}

Example:
  trellis gateway --zone east --name gw1 --token-file gw1.token \\
    --control-plane https://10.0.0.5:7400 --listen tls://0.0.0.0:7600 \\
    --advertise tls://gw1.east.example.com:7600 --admin 127.0.0.1:9600`;

export async function gatewayCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    zone: { type: 'string' },
    name: { type: 'string' },
    token: { type: 'string' },
    'token-file': { type: 'string' },
    'control-plane': { type: 'string', multiple: true },
    listen: { type: 'string', multiple: true },
    advertise: { type: 'string', multiple: true },
    admin: { type: 'string' },
    'data-dir': { type: 'string' },
    'egress-proxy': { type: 'string' },
    'connect-timeout': { type: 'string' },
    'drain-timeout': { type: 'string' },
    ...logFormatOption,
    'admin-allow-remote': { type: 'boolean' },
  }, false, gatewayConfigFile);
  if (values.help === true) {
    process.stdout.write(`${gatewayHelp}\n`);
    return 0;
  }
  const zone = required(values.zone, '--zone');
  if (!SERVICE_NAME_PATTERN.test(zone)) throw new UsageError(`--zone "${zone}" is not a valid zone name (lowercase letters, digits and '-', at most 63)`);
  const rawToken = joinTokenInput(values, 'TRELLIS_GATEWAY_TOKEN');
  const token = rawToken === undefined ? undefined : { raw: rawToken, parsed: parseGatewayToken(rawToken) };
  const name = values.name ?? token?.parsed.gateway;
  if (name === undefined) throw new UsageError('missing --name (or a --token that names the gateway)');
  if (!SERVICE_NAME_PATTERN.test(name)) throw new UsageError(`--name "${name}" is not a valid gateway name (lowercase letters, digits and '-', at most 63)`);
  const urls = controlPlaneUrls(values['control-plane']);
  const listen = (values.listen ?? []).map((url) => parseLinkUrl(url, '--listen'));
  if (listen.length === 0) throw new UsageError('missing --listen');
  const advertise = values.advertise?.map((url) => {
    const parsed = parseLinkUrl(url, '--advertise');
    // Peers need the scheme to pick the transport.
    return parsed.scheme === 'tls' && !url.startsWith('tls://') ? `tls://${url}` : url;
  });
  // Without --advertise the listen URLs are what peers dial: none may bind every address.
  if (advertise === undefined) for (const url of listen) checkAdvertisable(url, undefined);
  else for (const url of values.advertise ?? []) checkAdvertisable(listen[0] ?? parseLinkUrl(url, '--advertise'), parseLinkUrl(url, '--advertise'));
  const drainDeadlineMs = values['drain-timeout'] === undefined ? undefined : parseDurationMs(values['drain-timeout'], '--drain-timeout');
  const logFormat = parseLogFormat(values['log-format'], process.stderr.isTTY === true);
  const admin = values.admin === undefined ? undefined : parseHostPort(values.admin, '--admin');
  checkAdminAddress(admin, values['admin-allow-remote'] === true);
  // Before joining: a wrong flag costs no certificate, and its error names the flag.
  if (values['data-dir'] !== undefined) checkDataDir(values['data-dir']);
  await checkListenAddresses([...listen.map((url) => ({ flag: '--listen', ...url })), ...(admin === undefined ? [] : [{ flag: '--admin', ...admin }])]);
  const logger = createLogger(`gateway:${zone}/${name}`, logFormat);
  const gateway = await startGateway({
    zone,
    name,
    controlPlaneUrls: urls,
    token,
    listen,
    advertise,
    admin,
    dataDir: values['data-dir'],
    egress: egressConnectorFromEnv(values['egress-proxy'], process.env),
    connectTimeoutMs: values['connect-timeout'] === undefined ? undefined : parseDurationMs(values['connect-timeout'], '--connect-timeout'),
    logger,
  });
  if (!gateway.isReady()) await once(gateway.config, 'version');
  const lines = [`gateway ${zone}/${name} ready: links on ${gateway.listenUrls.join(', ')}`];
  if (gateway.adminAddress !== undefined) lines.push(`  admin on http://${gateway.adminAddress}`);
  // Caught before the ready lines, which tell a supervisor it may signal us now.
  const signals = watchStopSignals(logger);
  process.stdout.write(`${lines.join('\n')}\n`);
  await signals.first;
  // A second signal while draining means "now".
  signals.onSecond(() => gateway.close());
  await gateway.drain({ deadlineMs: drainDeadlineMs });
  return 0;
}

