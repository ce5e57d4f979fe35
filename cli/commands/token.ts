import { connectAdmin } from '../admin-client.js';
import { controlPlaneUrls, parseDurationMs, parseFlags, required, UsageError } from '../args.js';

export const tokenHelp = `Usage: trellis token create --service NAME [--ttl DURATION] --control-plane URL
                            [--admin-token-file FILE]
       trellis token create --gateway NAME --zone ZONE [--ttl DURATION] --control-plane URL
                            [--admin-token-file FILE]

Creates a join token bound to one service, or a gateway token bound to one gateway of one
zone, and prints only the token on stdout.
  --service NAME           the service the token lets a sidecar join as
  --gateway NAME           the gateway name the token lets a gateway start as (with --zone)
  --zone ZONE              the gateway's zone (with --gateway)
  --ttl DURATION           how long the token is valid (90s, 15m, 24h, 7d); default 24h
  --control-plane URL      https://HOST:PORT of the control plane (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)

Examples:
  trellis token create --service api --ttl 1h --control-plane https://127.0.0.1:7400
  trellis token create --gateway gw1 --zone east --control-plane https://127.0.0.1:7400`;

export async function tokenCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === '--help' || verb === '-h') {
    process.stdout.write(`${tokenHelp}\n`);
    return 0;
  }
  if (verb !== 'create') throw new UsageError(verb === undefined ? 'missing a token subcommand (create)' : `unknown token subcommand "${verb}"`);
  const { values } = parseFlags(rest, {
    service: { type: 'string' },
    gateway: { type: 'string' },
    zone: { type: 'string' },
    ttl: { type: 'string' },
    'control-plane': { type: 'string' },
    'admin-token-file': { type: 'string' },
  });
  if (values.help === true) {
    process.stdout.write(`${tokenHelp}\n`);
    return 0;
  }
  const subject = tokenSubject(values);
  const ttlMs = values.ttl === undefined ? 86_400_000 : parseDurationMs(values.ttl, '--ttl');
  if (ttlMs < 1000) throw new UsageError('--ttl must be at least 1s');
  const url = controlPlaneUrls(values['control-plane'])[0] as string;
  const admin = await connectAdmin(url, values['admin-token-file']);
  const answer = (await admin.call('POST', '/v1/tokens', { ...subject, ttlSeconds: Math.round(ttlMs / 1000) })) as { token: string };
  process.stdout.write(`${answer.token}\n`);
  return 0;
}

/** Whom the token is for: `--service`, or `--gateway` with `--zone`; never both kinds. */
function tokenSubject(values: { service?: string; gateway?: string; zone?: string }): { service: string } | { gateway: string; zone: string } {
  if (values.service !== undefined && values.gateway !== undefined) {
    throw new UsageError('--service and --gateway are mutually exclusive: a token is for a service or for a gateway');
  }
  if (values.gateway !== undefined) return { gateway: required(values.gateway, '--gateway'), zone: required(values.zone, '--zone') };
  if (values.zone !== undefined) throw new UsageError('--zone goes with --gateway (a service join token has no zone)');
  if (values.service === undefined) throw new UsageError('missing --service (or --gateway NAME --zone ZONE)');
  return { service: required(values.service, '--service') };
}
