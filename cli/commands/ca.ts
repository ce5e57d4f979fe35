import type { CaStatus } from '../../proto/control.js';
import { caStatusSchema, parseWithSchema } from '../../proto/control.js';
import { connectAdmin } from '../admin-client.js';
import { controlPlaneUrls, parseFlags, UsageError } from '../args.js';

export const caHelp = `Usage: trellis ca rotate [--control-plane URL] [--admin-token-file FILE]
       trellis ca status [--json] [--control-plane URL] [--admin-token-file FILE]

Rotates the mesh's root certificate without dropping traffic, and shows how far it got.
'rotate' adds a new root to the trust bundle and pushes it to every sidecar and gateway; once
all of them hold it, the new root signs and every leaf is re-issued from it; the old root is
retired when no live certificate depends on it.
  --json                   print the status as JSON
  --control-plane URL      https://HOST:PORT (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)

Phases: stable (one root) -> distributing (new root trusted, old signs) -> reissuing (new root
signs, old still trusted) -> stable (old root retired: the rotation is complete).

Examples:
  trellis ca rotate
  trellis ca status`;

export async function caCommand(args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const common = { 'control-plane': { type: 'string' }, 'admin-token-file': { type: 'string' } } as const;
  if (verb === 'rotate' || verb === 'status') {
    const { values } = parseFlags(rest, verb === 'status' ? { ...common, json: { type: 'boolean' } } : common);
    if (values.help === true) return printHelp();
    const admin = await connectAdmin(controlPlaneUrls(values['control-plane'])[0] as string, values['admin-token-file']);
    const raw = verb === 'rotate' ? await admin.call('POST', '/v1/ca/rotate', {}) : await admin.call('GET', '/v1/ca');
    const status = parseWithSchema(caStatusSchema, raw, 'CA status from the control plane');
    if ('json' in values && values.json === true) process.stdout.write(`${JSON.stringify(status, null, 2)}\n`);
    else process.stdout.write(formatStatus(status, verb === 'rotate'));
    return 0;
  }
  if (verb === '--help' || verb === '-h') return printHelp();
  throw new UsageError(verb === undefined ? 'missing a ca subcommand (rotate, status)' : `unknown ca subcommand "${verb}"`);
}

function formatStatus(status: CaStatus, justStarted: boolean): string {
  const lines = [justStarted ? 'CA rotation started' : `trust domain ${status.trustDomain}`, `phase: ${status.phase}`, 'roots in the trust bundle:'];
  for (const root of status.roots) lines.push(`  ${root.fingerprint}  ${root.role.padEnd(8)}  expires ${new Date(root.notAfter).toISOString()}`);
  if (status.phase !== 'stable') lines.push(`sidecars and gateways holding a leaf of the old root: ${status.oldRootHolders}`);
  const overdue = status.leaves.filter((leaf) => leaf.renewalOverdue);
  for (const leaf of overdue) lines.push(`renewal overdue: ${leaf.id} (certificate expires ${new Date(leaf.expiresAt).toISOString()})`);
  if (status.complete) lines.push(status.rotation?.completedAt === undefined ? 'no rotation under way' : `rotation complete at ${new Date(status.rotation.completedAt).toISOString()}`);
  else lines.push('rotation in progress');
  return `${lines.join('\n')}\n`;
}

function printHelp(): number {
  process.stdout.write(`${caHelp}\n`);
  return 0;
}
