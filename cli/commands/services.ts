import type { ServicesView } from '../../proto/control.js';
import { ControlErrorCode } from '../../proto/control.js';
import { TrellisError } from '../../proto/errors.js';
import { parseFlags, UsageError } from '../args.js';
import { connectFromFlags, inspectFlagOptions, inspectFlagsHelp, printJson } from '../inspect-flags.js';
import type { Styler } from '../style.js';
import { stylerFor } from '../style.js';
import { renderTable } from '../table.js';

export const servicesHelp = `Usage: trellis services [--json] [--control-plane URL] [--admin-token-file FILE]

Lists the services registered in the mesh: how many endpoints each has, how many are healthy
and how many have their sidecar connected to the control plane now.
${inspectFlagsHelp}

Examples:
  trellis services
  trellis services --json | jq '.services.api'`;

export const endpointsHelp = `Usage: trellis endpoints SERVICE [--json] [--control-plane URL] [--admin-token-file FILE]

Lists the endpoints of one service: sidecar id, link address, zone, weight, health, and whether
the sidecar is connected to the control plane now (an endpoint outlives its sidecar's session
by the lease time).
${inspectFlagsHelp}

Examples:
  trellis endpoints api
  trellis endpoints api --json`;

type Endpoint = ServicesView['services'][string][number];

export async function servicesCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, inspectFlagOptions);
  if (values.help === true) {
    process.stdout.write(`${servicesHelp}\n`);
    return 0;
  }
  const view = (await (await connectFromFlags(values)).call('GET', '/v1/services')) as ServicesView;
  if (values.json === true) {
    printJson(view);
    return 0;
  }
  const styler = stylerFor(process.stdout);
  const names = Object.keys(view.services).sort();
  if (names.length === 0) {
    process.stdout.write('no service is registered (start a sidecar: trellis help sidecar)\n');
    return 0;
  }
  const rows = names.map((name) => {
    const endpoints = view.services[name] ?? [];
    const healthy = endpoints.filter((endpoint) => endpoint.healthy).length;
    const connected = endpoints.filter((endpoint) => endpoint.connected).length;
    const zones = [...new Set(endpoints.map((endpoint) => endpoint.zone || 'default'))].sort().join(',');
    return [name, String(endpoints.length), count(styler, healthy, endpoints.length), count(styler, connected, endpoints.length), zones];
  });
  process.stdout.write(`${renderTable(['SERVICE', 'ENDPOINTS', 'HEALTHY', 'CONNECTED', 'ZONES'], rows)}\n`);
  return 0;
}

export async function endpointsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseFlags(args, inspectFlagOptions, true);
  if (values.help === true) {
    process.stdout.write(`${endpointsHelp}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError('endpoints takes one SERVICE: trellis endpoints SERVICE');
  const service = positionals[0] as string;
  const view = (await (await connectFromFlags(values)).call('GET', '/v1/services')) as ServicesView;
  const endpoints = view.services[service];
  if (endpoints === undefined) throw new TrellisError(ControlErrorCode.NOT_FOUND, `no sidecar of service "${service}" is registered (trellis services lists those that are)`);
  if (values.json === true) {
    printJson({ service, endpoints });
    return 0;
  }
  const styler = stylerFor(process.stdout);
  const rows = [...endpoints]
    .sort((a, b) => (a.sidecarId < b.sidecarId ? -1 : 1))
    .map((endpoint: Endpoint) => [endpoint.sidecarId, endpoint.address, endpoint.zone || 'default', String(endpoint.weight), yesNo(styler, endpoint.healthy), yesNo(styler, endpoint.connected)]);
  process.stdout.write(`${renderTable(['SIDECAR', 'ADDRESS', 'ZONE', 'WEIGHT', 'HEALTHY', 'CONNECTED'], rows)}\n`);
  return 0;
}

function count(styler: Styler, part: number, all: number): string {
  return styler.style(part === all ? 'green' : part === 0 ? 'red' : 'yellow', String(part));
}

function yesNo(styler: Styler, value: boolean): string {
  return value ? styler.style('green', 'yes') : styler.style('red', 'no');
}
