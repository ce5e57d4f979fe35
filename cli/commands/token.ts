import { parseWithSchema } from '../../proto/control.js';
import type { TokenInfo } from '../../proto/tokens.js';
import { tokenIdSchema, tokenInfoSchema, tokenListSchema, tokenState } from '../../proto/tokens.js';
import { connectAdmin } from '../admin-client.js';
import { controlPlaneUrls, parseDurationMs, parseFlags, required, UsageError } from '../args.js';

export const tokenHelp = `Usage: trellis token create --service NAME [--ttl DURATION] [--once] --control-plane URL
                            [--admin-token-file FILE]
       trellis token create --gateway NAME --zone ZONE [--ttl DURATION] [--once] --control-plane URL
                            [--admin-token-file FILE]
       trellis token list [--json] --control-plane URL [--admin-token-file FILE]
       trellis token revoke ID --control-plane URL [--admin-token-file FILE]

create: makes a join token bound to one service, or a gateway token bound to one gateway of
one zone, and prints only the token on stdout.
list:   shows the tokens the control plane holds (until they expire and are pruned): id, kind,
        whom it is for, when it was created and expires, whether it is for one use, when it
        was used, and its state (active, used, revoked, expired). Never a secret.
revoke: refuses every later join with token ID (TRELLIS_ERR_TOKEN_REVOKED). Sidecars and
        gateways that already joined with it keep their certificates.
  --service NAME           the service the token lets a sidecar join as
  --gateway NAME           the gateway name the token lets a gateway start as (with --zone)
  --zone ZONE              the gateway's zone (with --gateway)
  --ttl DURATION           how long the token is valid (90s, 15m, 24h, 7d); default 24h
  --once                   the first successful join uses the token up (TRELLIS_ERR_TOKEN_USED after)
  --json                   list as JSON, for scripts
  --control-plane URL      https://HOST:PORT of the control plane (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)

Examples:
  trellis token create --service api --ttl 1h --once --control-plane https://127.0.0.1:7400 > api.token
  chmod 600 api.token; trellis sidecar --service api --token-file api.token ...
  trellis token create --gateway gw1 --zone east --control-plane https://127.0.0.1:7400
  trellis token list --control-plane https://127.0.0.1:7400
  trellis token revoke 3f9a0c1d2b4e5f60 --control-plane https://127.0.0.1:7400`;

const adminFlags = { 'control-plane': { type: 'string' }, 'admin-token-file': { type: 'string' } } as const;

export async function tokenCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb === '--help' || verb === '-h') {
    process.stdout.write(`${tokenHelp}\n`);
    return 0;
  }
  if (verb === 'create') return createCommand(rest);
  if (verb === 'list') return listCommand(rest);
  if (verb === 'revoke') return revokeCommand(rest);
  throw new UsageError(verb === undefined ? 'missing a token subcommand (create, list, revoke)' : `unknown token subcommand "${verb}" (create, list, revoke)`);
}

async function createCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    service: { type: 'string' },
    gateway: { type: 'string' },
    zone: { type: 'string' },
    ttl: { type: 'string' },
    once: { type: 'boolean' },
    ...adminFlags,
  });
  if (values.help === true) return printHelp();
  const subject = tokenSubject(values);
  const ttlMs = values.ttl === undefined ? 86_400_000 : parseDurationMs(values.ttl, '--ttl');
  if (ttlMs < 1000) throw new UsageError('--ttl must be at least 1s');
  const url = controlPlaneUrls(values['control-plane'])[0] as string;
  const admin = await connectAdmin(url, values['admin-token-file']);
  // `once` only when asked, so that a control plane that predates it still takes the request.
  const body = { ...subject, ttlSeconds: Math.round(ttlMs / 1000), ...(values.once === true ? { once: true } : {}) };
  const answer = (await admin.call('POST', '/v1/tokens', body)) as { token: string };
  process.stdout.write(`${answer.token}\n`);
  return 0;
}

async function listCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, { json: { type: 'boolean' }, ...adminFlags });
  if (values.help === true) return printHelp();
  const url = controlPlaneUrls(values['control-plane'])[0] as string;
  const admin = await connectAdmin(url, values['admin-token-file']);
  const { tokens } = parseWithSchema(tokenListSchema, await admin.call('GET', '/v1/tokens'), 'token list from the control plane');
  const nowMs = Date.now();
  if (values.json === true) {
    process.stdout.write(`${JSON.stringify(tokens.map((token) => ({ ...token, state: tokenState(token, nowMs) })), null, 2)}\n`);
  } else {
    process.stdout.write(formatTokenTable(tokens, nowMs));
  }
  return 0;
}

async function revokeCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, adminFlags, true);
  if (values.help === true) return printHelp();
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'missing the ID of the token to revoke (see trellis token list)' : 'give one token ID to revoke');
  const id = positionals[0] as string;
  if (!tokenIdSchema.safeParse(id).success) throw new UsageError(`"${id}" is not a token id (1..64 base64url characters; see trellis token list)`);
  const url = controlPlaneUrls(values['control-plane'])[0] as string;
  const admin = await connectAdmin(url, values['admin-token-file']);
  const revoked = parseWithSchema(tokenInfoSchema, await admin.call('POST', '/v1/tokens/revoke', { id }), 'revocation answer from the control plane');
  process.stdout.write(`revoked token ${revoked.id} (${revoked.kind} ${boundTo(revoked)})\n`);
  return 0;
}

function printHelp(): number {
  process.stdout.write(`${tokenHelp}\n`);
  return 0;
}

/** An aligned table, one token a line, with a header; a line saying so when there are none. */
export function formatTokenTable(tokens: readonly TokenInfo[], nowMs: number): string {
  if (tokens.length === 0) return 'no tokens\n';
  const rows = [['ID', 'KIND', 'FOR', 'CREATED', 'EXPIRES', 'ONCE', 'USED', 'STATE']];
  for (const token of tokens) {
    rows.push([token.id, token.kind, boundTo(token), time(token.createdAt), time(token.expiresAt), token.once ? 'yes' : 'no', time(token.usedAt), tokenState(token, nowMs)]);
  }
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => (row[column] ?? '').length))) ?? [];
  return rows.map((row) => `${row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd()}\n`).join('');
}

function boundTo(token: TokenInfo): string {
  return token.kind === 'service' ? (token.service ?? '-') : `${token.zone ?? '-'}/${token.gateway ?? '-'}`;
}

/** UTC to the second: `2026-12-02T05:40:12Z`, or `-` when there is none. */
function time(ms: number | undefined): string {
  return ms === undefined ? '-' : `${new Date(ms).toISOString().slice(0, 19)}Z`;
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
