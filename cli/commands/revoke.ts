import type { RevocationsView } from '../../proto/control.js';
import { connectAdmin } from '../admin-client.js';
import { controlPlaneUrls, parseFlags, UsageError } from '../args.js';

export const revokeHelp = `Usage: trellis revoke --sidecar ID [--control-plane URL] [--admin-token-file FILE]
       trellis revoke --service NAME [--control-plane URL] [--admin-token-file FILE]
       trellis revoke --service NAME --allow-joins [--control-plane URL] [--admin-token-file FILE]
       trellis revoke --list [--control-plane URL] [--admin-token-file FILE]

Takes an identity back, mesh-wide and at once: every sidecar and gateway closes its links to
it and refuses new ones, and the control plane refuses its channel and its renewals.
  --sidecar ID             one sidecar (sc-…) or gateway (gw-…), by the id in its certificate
  --service NAME           every certificate the service holds now; its sidecars cannot join
                           again until --allow-joins
  --allow-joins            with --service: let new sidecars of the service join again; the
                           certificates issued before the revocation stay revoked
  --list                   print the revocations in force (JSON)
  --control-plane URL      https://HOST:PORT (or set TRELLIS_CONTROL_PLANE)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)

Examples:
  trellis revoke --sidecar sc-3f2a9c01b4de
  trellis revoke --service billing
  trellis revoke --service billing --allow-joins`;

export async function revokeCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    sidecar: { type: 'string' },
    service: { type: 'string' },
    'allow-joins': { type: 'boolean' },
    list: { type: 'boolean' },
    'control-plane': { type: 'string' },
    'admin-token-file': { type: 'string' },
  });
  if (values.help === true) {
    process.stdout.write(`${revokeHelp}\n`);
    return 0;
  }
  const chosen = [values.sidecar !== undefined, values.service !== undefined, values.list === true].filter(Boolean).length;
  if (chosen !== 1) throw new UsageError('give one of --sidecar ID, --service NAME or --list');
  if (values['allow-joins'] === true && values.service === undefined) throw new UsageError('--allow-joins goes with --service');
  const admin = await connectAdmin(controlPlaneUrls(values['control-plane'])[0] as string, values['admin-token-file']);
  if (values.list === true) {
    process.stdout.write(`${JSON.stringify(await admin.call('GET', '/v1/revocations'), null, 2)}\n`);
    return 0;
  }
  if (values['allow-joins'] === true) {
    await admin.call('DELETE', '/v1/revocations', { service: values.service });
    process.stdout.write(`service ${values.service ?? ''} may join again; its certificates from before the revocation stay revoked\n`);
    return 0;
  }
  const body = values.sidecar !== undefined ? { sidecarId: values.sidecar } : { service: values.service };
  const what = values.sidecar !== undefined ? `sidecar ${values.sidecar}` : `service ${values.service ?? ''}`;
  const view = (await admin.call('POST', '/v1/revocations', body)) as RevocationsView;
  process.stdout.write(`revoked ${what} (config version ${view.version})\n`);
  // An id or name no sidecar registered is kept (it may be offline), but a typo would pass unnoticed.
  if (view.known === false) process.stderr.write(`trellis: note: no endpoint of ${what} is registered (now); the revocation is kept\n`);
  return 0;
}
