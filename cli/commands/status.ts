import type { MeshView } from '../../control-plane/dashboard/view-types.js';
import type { PoliciesView, ServicesView, TrustBundle } from '../../proto/control.js';
import type { AdminClient } from '../admin-client.js';
import { connectAdmin } from '../admin-client.js';
import { controlPlaneUrls, parseFlags } from '../args.js';
import { printJson } from '../inspect-flags.js';
import { ProgressLine } from '../progress.js';
import type { Styler } from '../style.js';
import { stylerFor } from '../style.js';
import { renderTable } from '../table.js';
import { packageVersion } from '../version.js';

export const statusHelp = `Usage: trellis status [--json] [--control-plane URL]... [--admin-token-file FILE] [--admin-url URL]...

Checks the mesh and says what is wrong: every control-plane replica answers, every registered
service has a healthy endpoint, every service a sidecar routes to (its upstreams, and services
its app reaches through the proxy port) has a healthy endpoint, no sidecar or gateway fails to
renew its certificate (from their reports to the control plane), sidecars and gateways are
connected, policies name services that exist; and, for the sidecars given by --admin-url, that
each is ready, connected, on this CLI's version, with a certificate far from expiry. Exits 0
when nothing is wrong (warnings allowed), 1 otherwise.
  --control-plane URL      https://HOST:PORT, repeat for each replica (or TRELLIS_CONTROL_PLANE,
                           comma-separated)
  --admin-token-file FILE  the admin token (or set TRELLIS_ADMIN_TOKEN)
  --admin-url URL          a sidecar's admin endpoint (http://HOST:PORT, as it printed it) to
                           check too (repeatable)
  --json                   print the findings as JSON for scripts

Examples:
  trellis status
  trellis status --admin-url http://127.0.0.1:9501 --admin-url http://127.0.0.1:9502
  trellis status --json | jq '.problems'`;

/** A certificate closer than this to its expiry is worth a warning. */
const CERT_EXPIRY_WARNING_MS = 60 * 60 * 1000;
/** How long a sidecar's admin endpoint may take to answer. */
const ADMIN_URL_TIMEOUT_MS = 5000;

/** One finding: an error fails the check, a warning is printed only. */
export interface Problem {
  severity: 'error' | 'warning';
  subject: string;
  message: string;
}

interface ControlPlaneFinding {
  url: string;
  ok: boolean;
  trustDomain?: string;
  configVersion?: number;
  error?: string;
}

/** What a sidecar's `GET /status` holds that the check reads. */
interface SidecarStatus {
  version?: string;
  service: string;
  sidecarId: string;
  ready: boolean;
  controlPlaneConnected: boolean;
  configVersion: number;
  certExpiresAt: string;
  upstreams: { service: string; endpoints: { healthy?: boolean }[] }[];
}

interface SidecarFinding {
  adminUrl: string;
  status?: SidecarStatus;
  error?: string;
}

interface GatewaysView {
  gateways: { zone: string; name: string; addresses: string[]; links: string[]; connected: boolean }[];
}

export async function statusCommand(args: string[]): Promise<number> {
  const { values } = parseFlags(args, {
    'control-plane': { type: 'string', multiple: true },
    'admin-token-file': { type: 'string' },
    'admin-url': { type: 'string', multiple: true },
    json: { type: 'boolean' },
  });
  if (values.help === true) {
    process.stdout.write(`${statusHelp}\n`);
    return 0;
  }
  const progress = new ProgressLine(process.stderr);
  const found = await progress.during('checking the mesh…', () => checkMesh(values, progress));
  const { problems } = found;
  if (values.json === true) {
    const { cliVersion, controlPlanes, services, gateways, mesh, sidecars } = found;
    printJson({ ok: !problems.some((p) => p.severity === 'error'), cliVersion, controlPlanes, services: services?.services, gateways: gateways?.gateways, reportedSidecars: reportedSidecars(mesh), sidecars, problems });
  } else {
    process.stdout.write(render(stylerFor(process.stdout), found));
  }
  return problems.some((problem) => problem.severity === 'error') ? 1 : 0;
}

interface Findings {
  cliVersion: string;
  controlPlanes: ControlPlaneFinding[];
  services: ServicesView | undefined;
  gateways: GatewaysView | undefined;
  mesh: MeshView | undefined;
  sidecars: SidecarFinding[];
  problems: Problem[];
}

async function checkMesh(values: { 'control-plane'?: string[]; 'admin-token-file'?: string; 'admin-url'?: string[] }, progress: ProgressLine): Promise<Findings> {
  const problems: Problem[] = [];
  const controlPlanes: ControlPlaneFinding[] = [];
  let admin: AdminClient | undefined;
  for (const url of controlPlaneUrls(values['control-plane'])) {
    try {
      const client = await connectAdmin(url, values['admin-token-file'], progress);
      const bundle = (await client.call('GET', '/v1/trust-bundle')) as TrustBundle;
      const { version } = (await client.call('GET', '/v1/policies')) as PoliciesView;
      controlPlanes.push({ url, ok: true, trustDomain: bundle.trustDomain, configVersion: version });
      admin ??= client;
    } catch (error) {
      const message = describeError(error);
      controlPlanes.push({ url, ok: false, error: message });
      problems.push({ severity: 'error', subject: `control plane ${url}`, message: `does not answer: ${message}` });
    }
  }
  const services = admin === undefined ? undefined : ((await admin.call('GET', '/v1/services')) as ServicesView);
  const gateways = admin === undefined ? undefined : ((await admin.call('GET', '/v1/gateways')) as GatewaysView);
  const policies = admin === undefined ? undefined : ((await admin.call('GET', '/v1/policies')) as PoliciesView);
  const mesh = admin === undefined ? undefined : await readMesh(admin, problems);
  const routedBy = routersOf(mesh);
  const configVersion = Math.max(...controlPlanes.map((cp) => cp.configVersion ?? 0));
  if (services !== undefined) problems.push(...serviceProblems(services, policies, routedBy));
  if (mesh !== undefined) problems.push(...reportedProblems(mesh, services, routedBy));
  for (const gateway of gateways?.gateways ?? []) {
    if (!gateway.connected) problems.push({ severity: 'error', subject: `gateway ${gateway.zone}/${gateway.name}`, message: 'is not connected to the control plane' });
  }
  const sidecars = await Promise.all((values['admin-url'] ?? []).map((url) => progress.during(`asking the sidecar at ${url}…`, () => readSidecar(url))));
  const cliVersion = packageVersion();
  for (const sidecar of sidecars) problems.push(...sidecarProblems(sidecar, configVersion, services, cliVersion, routedBy));
  return { cliVersion, controlPlanes, services, gateways, mesh, sidecars, problems };
}

/** What scripts get of each reported sidecar. */
function reportedSidecars(mesh: MeshView | undefined): unknown[] | undefined {
  return mesh?.sidecars.map(({ sidecarId, service, zone, software, connected, certExpiresAt, certRenewalFailing, routes }) => ({ sidecarId, service, zone, software, connected, certExpiresAt, certRenewalFailing, routes }));
}

/**
 * The control plane's view of the mesh, from the sidecars' and gateways' reports. A control plane
 * older than `/v1/mesh` answers 404: the checks that need reports are skipped, with a warning.
 */
async function readMesh(admin: AdminClient, problems: Problem[]): Promise<MeshView | undefined> {
  try {
    return (await admin.call('GET', '/v1/mesh')) as MeshView;
  } catch (error) {
    problems.push({ severity: 'warning', subject: 'control plane', message: `has no mesh view (${describeError(error)}): renewals and routed-to services not checked` });
    return undefined;
  }
}

/** `service/sidecar` of the sidecars that report routing to each service. */
function routersOf(mesh: MeshView | undefined): Map<string, string[]> {
  const routers = new Map<string, string[]>();
  for (const sidecar of mesh?.sidecars ?? []) {
    for (const service of sidecar.routes ?? []) routers.set(service, [...(routers.get(service) ?? []), `${sidecar.service}/${sidecar.sidecarId}`]);
  }
  return routers;
}

/** What the reports say: failing renewals, and services routed to that nobody registered. */
function reportedProblems(mesh: MeshView, services: ServicesView | undefined, routedBy: Map<string, string[]>): Problem[] {
  const problems: Problem[] = [];
  for (const [service, routers] of routedBy) {
    // A registered service without a healthy endpoint is already found by serviceProblems.
    if (services?.services[service] === undefined) problems.push({ severity: 'error', subject: `service ${service}`, message: `has no endpoint, and ${routedByText(routers)} route${routers.length === 1 ? 's' : ''} to it` });
  }
  for (const sidecar of mesh.sidecars) {
    if (sidecar.certRenewalFailing === true) problems.push({ severity: 'error', subject: `sidecar ${sidecar.service}/${sidecar.sidecarId}`, message: `cannot renew its certificate${expiryText(sidecar.certExpiresAt)}` });
  }
  for (const gateway of mesh.gateways) {
    if (gateway.certRenewalFailing === true) problems.push({ severity: 'error', subject: `gateway ${gateway.zone}/${gateway.name}`, message: `cannot renew its certificate${expiryText(gateway.certExpiresAt)}` });
  }
  return problems;
}

function routedByText(routers: string[]): string {
  const named = routers.slice(0, 3).join(', ');
  return routers.length > 3 ? `${named} and ${routers.length - 3} more` : named;
}

function expiryText(expiresAt: number | null): string {
  return expiresAt === null ? '' : ` (it expires at ${new Date(expiresAt).toISOString()})`;
}

function serviceProblems(view: ServicesView, policies: PoliciesView | undefined, routedBy: Map<string, string[]>): Problem[] {
  const problems: Problem[] = [];
  for (const [service, endpoints] of Object.entries(view.services)) {
    const routers = routedBy.get(service);
    const routed = routers === undefined ? '' : `, and ${routedByText(routers)} route${routers.length === 1 ? 's' : ''} to it`;
    if (!endpoints.some((endpoint) => endpoint.healthy)) problems.push({ severity: 'error', subject: `service ${service}`, message: `has no healthy endpoint${routed}` });
    for (const endpoint of endpoints) {
      if (!endpoint.connected) {
        problems.push({ severity: 'warning', subject: `endpoint ${service}/${endpoint.sidecarId}`, message: `(${endpoint.address}) has no connected sidecar; it goes when its lease ends` });
      }
    }
  }
  for (const rule of policies?.rules ?? []) {
    for (const named of [rule.from, rule.to]) {
      if (named !== '*' && view.services[named] === undefined) {
        problems.push({ severity: 'warning', subject: `policy ${rule.from} -> ${rule.to}`, message: `names service "${named}", which no sidecar has registered` });
      }
    }
  }
  return problems;
}

function sidecarProblems(sidecar: SidecarFinding, configVersion: number, services: ServicesView | undefined, cliVersion: string, routedBy: Map<string, string[]>): Problem[] {
  if (sidecar.status === undefined) return [{ severity: 'error', subject: `sidecar ${sidecar.adminUrl}`, message: `does not answer: ${sidecar.error ?? ''}` }];
  const status = sidecar.status;
  const subject = `sidecar ${status.service}/${status.sidecarId}`;
  const problems: Problem[] = [];
  if (!status.ready) problems.push({ severity: 'error', subject, message: 'is not ready' });
  if (status.version !== undefined && status.version !== cliVersion) problems.push({ severity: 'warning', subject, message: `runs version ${status.version}, this CLI ${cliVersion}` });
  if (!status.controlPlaneConnected) problems.push({ severity: 'error', subject, message: 'is not connected to the control plane (it serves with its last config)' });
  // No check of its config version against the control plane's: with scoped push a sidecar
  // hears only of changes in its scope, so its version trails the control plane's by design.
  const expiresInMs = Date.parse(status.certExpiresAt) - Date.now();
  if (expiresInMs <= 0) problems.push({ severity: 'error', subject, message: `has an expired certificate (${status.certExpiresAt})` });
  else if (expiresInMs < CERT_EXPIRY_WARNING_MS) problems.push({ severity: 'warning', subject, message: `has a certificate expiring at ${status.certExpiresAt}` });
  for (const upstream of status.upstreams) {
    // Found once, for the service, when the control plane has this sidecar's report.
    if (routedBy.get(upstream.service)?.includes(`${status.service}/${status.sidecarId}`) === true) continue;
    const registered = services?.services[upstream.service];
    const healthy = registered === undefined ? upstream.endpoints.some((endpoint) => endpoint.healthy !== false) : registered.some((endpoint) => endpoint.healthy);
    if (!healthy) problems.push({ severity: 'error', subject, message: `routes to service "${upstream.service}", which has no healthy endpoint` });
  }
  return problems;
}

async function readSidecar(adminUrl: string): Promise<SidecarFinding> {
  try {
    const response = await fetch(new URL('/status', adminUrl), { signal: AbortSignal.timeout(ADMIN_URL_TIMEOUT_MS) });
    if (!response.ok) return { adminUrl, error: `HTTP ${response.status}` };
    return { adminUrl, status: (await response.json()) as SidecarStatus };
  } catch (error) {
    return { adminUrl, error: describeError(error) };
  }
}

function describeError(error: unknown): string {
  const code = (error as { code?: unknown }).code ?? ((error as { cause?: { code?: unknown } }).cause?.code);
  const message = error instanceof Error ? error.message : String(error);
  return typeof code === 'string' && !message.includes(code) ? `${message} [${code}]` : message;
}

function render(
  styler: Styler,
  found: Findings,
): string {
  const ok = styler.style('green', 'ok');
  const failed = styler.style('red', 'failed');
  const indent = (text: string): string => text.split('\n').map((line) => `  ${line}`).join('\n');
  const sections: string[] = [];
  sections.push(
    `Control plane\n${indent(
      renderTable(
        ['URL', 'STATE', 'TRUST DOMAIN', 'CONFIG'],
        found.controlPlanes.map((cp) => [cp.url, cp.ok ? ok : failed, cp.trustDomain ?? '-', cp.configVersion === undefined ? '-' : String(cp.configVersion)]),
      ),
    )}`,
  );
  if (found.services !== undefined) {
    const names = Object.keys(found.services.services).sort();
    const rows = names.map((name) => {
      const endpoints = found.services?.services[name] ?? [];
      const healthy = endpoints.filter((endpoint) => endpoint.healthy).length;
      return [name, String(endpoints.length), styler.style(healthy === 0 ? 'red' : healthy < endpoints.length ? 'yellow' : 'green', String(healthy)), String(endpoints.filter((endpoint) => endpoint.connected).length)];
    });
    sections.push(`Services\n${indent(rows.length === 0 ? 'none registered' : renderTable(['SERVICE', 'ENDPOINTS', 'HEALTHY', 'CONNECTED'], rows))}`);
  }
  if (found.gateways !== undefined && found.gateways.gateways.length > 0) {
    const rows = found.gateways.gateways.map((gateway) => [`${gateway.zone}/${gateway.name}`, gateway.connected ? ok : failed, gateway.addresses.join(',') || '(dials out)', String(gateway.links.length)]);
    sections.push(`Gateways\n${indent(renderTable(['GATEWAY', 'STATE', 'ADDRESSES', 'LINKS'], rows))}`);
  }
  if (found.mesh !== undefined && found.mesh.sidecars.length > 0) {
    const rows = found.mesh.sidecars.map((sidecar) => [
      sidecar.service,
      sidecar.sidecarId,
      sidecar.zone,
      sidecar.software ?? '-',
      sidecar.connected ? 'yes' : styler.style('red', 'no'),
      sidecar.certExpiresAt === null ? '-' : new Date(sidecar.certExpiresAt).toISOString(),
      sidecar.certRenewalFailing === true ? styler.style('red', 'failing') : sidecar.certRenewalFailing === false ? 'ok' : '-',
      (sidecar.routes ?? []).join(',') || '-',
    ]);
    sections.push(`Sidecars (from their reports)\n${indent(renderTable(['SERVICE', 'SIDECAR', 'ZONE', 'VERSION', 'CONNECTED', 'CERT EXPIRES', 'RENEWAL', 'ROUTES TO'], rows))}`);
  }
  if (found.sidecars.length > 0) {
    const rows = found.sidecars.map((sidecar) =>
      sidecar.status === undefined
        ? ['-', '-', sidecar.adminUrl, '-', failed, '-', '-', '-']
        : [sidecar.status.service, sidecar.status.sidecarId, sidecar.adminUrl, sidecar.status.version ?? '-', sidecar.status.ready ? ok : failed, sidecar.status.controlPlaneConnected ? 'yes' : styler.style('red', 'no'), String(sidecar.status.configVersion), sidecar.status.certExpiresAt],
    );
    sections.push(`Sidecars (from --admin-url)\n${indent(renderTable(['SERVICE', 'SIDECAR', 'ADMIN', 'VERSION', 'READY', 'CONNECTED', 'CONFIG', 'CERT EXPIRES'], rows))}`);
  }
  const errors = found.problems.filter((problem) => problem.severity === 'error');
  const lines = found.problems.map((problem) => `  ${problem.severity === 'error' ? styler.style('red', 'error  ') : styler.style('yellow', 'warning')}  ${problem.subject} ${problem.message}`);
  const verdict = errors.length === 0 ? styler.style('green', `Nothing is wrong${found.problems.length > 0 ? ` (${found.problems.length} warning${found.problems.length === 1 ? '' : 's'})` : ''}.`) : styler.style('red', `${errors.length} problem${errors.length === 1 ? '' : 's'} found.`);
  sections.push(`${lines.length > 0 ? `Problems\n${lines.join('\n')}\n` : ''}${verdict}`);
  return `${sections.join('\n\n')}\n`;
}
