import { connectAdmin } from '../admin-client.js';
import type { AdminClient } from '../admin-client.js';
import type { PoliciesView } from '../../proto/control.js';
import { controlPlaneUrls, parseFlags, required, UsageError } from '../args.js';
import { stylerFor } from '../style.js';
import { renderTable } from '../table.js';

export const policyHelp = `Usage: trellis policy allow|deny --from SERVICE --to SERVICE [--close-existing] [--control-plane URL] [--admin-token-file FILE]
       trellis policy remove --from SERVICE --to SERVICE [--control-plane URL] [--admin-token-file FILE]
       trellis policy default allow|deny [--close-existing] [--control-plane URL] [--admin-token-file FILE]
       trellis policy list [--json] [--control-plane URL] [--admin-token-file FILE]
       trellis policy show [--control-plane URL] [--admin-token-file FILE]

Sets who may call whom. Enforced by the destination's sidecar on every new connection.
  --from SERVICE           the calling service, or '*' for every caller
  --to SERVICE             the called service
  --close-existing         with deny: also reset the open connections the policy now denies
                           (without it, a change acts on new connections only)
  --control-plane URL      https://HOST:PORT (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)

A rule naming the caller wins over a '*' rule, which wins over the default. 'remove' takes a
rule away, so that the next one down decides again. 'list' prints the default and the rules as a
table (--json for scripts); 'show' prints the control plane's answer as it is.

Examples:
  trellis policy deny --from web --to db
  trellis policy deny --from web --to db --close-existing
  trellis policy remove --from web --to db
  trellis policy default deny
  trellis policy list`;

export async function policyCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const common = { 'control-plane': { type: 'string' }, 'admin-token-file': { type: 'string' } } as const;
  if (verb === 'allow' || verb === 'deny' || verb === 'remove') {
    const { values } = parseFlags(rest, { ...common, from: { type: 'string' }, to: { type: 'string' }, 'close-existing': { type: 'boolean' } });
    if (values.help === true) return printHelp();
    const closeExisting = closeExistingFlag(verb, values['close-existing']);
    const from = required(values.from, '--from');
    const to = required(values.to, '--to');
    const admin = await connectAdmin(firstUrl(values['control-plane']), values['admin-token-file']);
    if (verb === 'remove') {
      await admin.call('DELETE', '/v1/policies/rules', { from, to });
      process.stdout.write(`removed ${from} -> ${to}\n`);
      return 0;
    }
    await admin.call('PUT', '/v1/policies/rules', { from, to, action: verb, ...closeExisting });
    process.stdout.write(`${verb} ${from} -> ${to}\n`);
    await warnIfUnregistered(admin, [from, to]);
    return 0;
  }
  if (verb === 'default') {
    const { values, positionals } = parseFlags(rest, { ...common, 'close-existing': { type: 'boolean' } }, true);
    if (values.help === true) return printHelp();
    const action = positionals[0];
    if (positionals.length !== 1 || (action !== 'allow' && action !== 'deny')) throw new UsageError('policy default takes one word: allow or deny');
    const closeExisting = closeExistingFlag(action, values['close-existing']);
    const admin = await connectAdmin(firstUrl(values['control-plane']), values['admin-token-file']);
    await admin.call('PUT', '/v1/policies/default', { action, ...closeExisting });
    process.stdout.write(`default ${action}\n`);
    return 0;
  }
  if (verb === 'show') {
    const { values } = parseFlags(rest, common);
    if (values.help === true) return printHelp();
    const admin = await connectAdmin(firstUrl(values['control-plane']), values['admin-token-file']);
    process.stdout.write(`${JSON.stringify(await admin.call('GET', '/v1/policies'), null, 2)}\n`);
    return 0;
  }
  if (verb === 'list') {
    const { values } = parseFlags(rest, { ...common, json: { type: 'boolean' } });
    if (values.help === true) return printHelp();
    const admin = await connectAdmin(firstUrl(values['control-plane']), values['admin-token-file']);
    const view = (await admin.call('GET', '/v1/policies')) as PoliciesView;
    if (values.json === true) {
      process.stdout.write(`${JSON.stringify(view, null, 2)}\n`);
      return 0;
    }
    const styler = stylerFor(process.stdout);
    const action = (text: string): string => styler.style(text === 'deny' ? 'red' : 'green', text);
    const rows = view.rules.map((rule) => [rule.from, rule.to, action(rule.action)]);
    process.stdout.write(`default: ${action(view.defaultAction)} (for calls no rule matches)\n`);
    process.stdout.write(rows.length === 0 ? 'no rules\n' : `${renderTable(['FROM', 'TO', 'ACTION'], rows)}\n`);
    return 0;
  }
  if (verb === '--help' || verb === '-h') return printHelp();
  throw new UsageError(verb === undefined ? 'missing a policy subcommand (allow, deny, remove, default, list, show)' : `unknown policy subcommand "${verb}"`);
}

/** `--close-existing` as the request field; only a deny can close anything. */
function closeExistingFlag(verb: string, flag: boolean | undefined): { closeExisting?: true } {
  if (flag !== true) return {};
  if (verb !== 'deny') throw new UsageError(`--close-existing goes with deny, not ${verb}`);
  return { closeExisting: true };
}

function firstUrl(flag: string | undefined): string {
  return controlPlaneUrls(flag)[0] as string;
}

/**
 * A rule for a service no sidecar has registered is kept (it may come later), but a typo
 * would otherwise pass unnoticed: say so on stderr.
 */
async function warnIfUnregistered(admin: AdminClient, services: string[]): Promise<void> {
  const { services: registered } = (await admin.call('GET', '/v1/services')) as { services: Record<string, unknown> };
  for (const service of services) {
    if (service !== '*' && registered[service] === undefined) {
      process.stderr.write(`trellis: note: no sidecar of service "${service}" is registered (yet); the rule is kept\n`);
    }
  }
}

function printHelp(): number {
  process.stdout.write(`${policyHelp}\n`);
  return 0;
}
