import { connectAdmin } from '../admin-client.js';
import { parseControlPlaneUrl, parseFlags, required, UsageError } from '../args.js';

export const policyHelp = `Usage: trellis policy allow|deny --from SERVICE --to SERVICE --control-plane URL [--admin-token-file FILE]
       trellis policy default allow|deny --control-plane URL [--admin-token-file FILE]
       trellis policy show --control-plane URL [--admin-token-file FILE]

Sets who may call whom. Enforced by the destination's sidecar on every new connection.
  --from SERVICE           the calling service, or '*' for every caller
  --to SERVICE             the called service`;

export async function policyCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const common = { 'control-plane': { type: 'string' }, 'admin-token-file': { type: 'string' } } as const;
  if (verb === 'allow' || verb === 'deny') {
    const { values } = parseFlags(rest, { ...common, from: { type: 'string' }, to: { type: 'string' } });
    if (values.help === true) return printHelp();
    const from = required(values.from, '--from');
    const to = required(values.to, '--to');
    const admin = await connectAdmin(parseControlPlaneUrl(required(values['control-plane'], '--control-plane')), values['admin-token-file']);
    await admin.call('PUT', '/v1/policies/rules', { from, to, action: verb });
    process.stdout.write(`${verb} ${from} -> ${to}\n`);
    return 0;
  }
  if (verb === 'default') {
    const { values, positionals } = parseFlags(rest, common, true);
    if (values.help === true) return printHelp();
    const action = positionals[0];
    if (positionals.length !== 1 || (action !== 'allow' && action !== 'deny')) throw new UsageError('policy default takes one word: allow or deny');
    const admin = await connectAdmin(parseControlPlaneUrl(required(values['control-plane'], '--control-plane')), values['admin-token-file']);
    await admin.call('PUT', '/v1/policies/default', { action });
    process.stdout.write(`default ${action}\n`);
    return 0;
  }
  if (verb === 'show') {
    const { values } = parseFlags(rest, common);
    if (values.help === true) return printHelp();
    const admin = await connectAdmin(parseControlPlaneUrl(required(values['control-plane'], '--control-plane')), values['admin-token-file']);
    process.stdout.write(`${JSON.stringify(await admin.call('GET', '/v1/policies'), null, 2)}\n`);
    return 0;
  }
  if (verb === '--help' || verb === '-h') return printHelp();
  throw new UsageError(verb === undefined ? 'missing a policy subcommand (allow, deny, default, show)' : `unknown policy subcommand "${verb}"`);
}

function printHelp(): number {
  process.stdout.write(`${policyHelp}\n`);
  return 0;
}
