/**
 * Builds the dashboard's {@link MeshView} from what the control plane holds: endpoints and
 * gateways from the registries, policies from the config, traffic from the latest reports.
 */
import type { EndpointValue } from '../../proto/control.js';
import type { GatewayRegistry } from '../gateway-registry.js';
import type { PolicyService } from '../policies.js';
import type { Registry } from '../registry.js';
import type { ReportStore, SenderReports } from '../reports.js';
import type { EndpointView, GatewayView, LinkView, MeshView, ServiceView, SidecarView, WarningView } from './view-types.js';

/** A warning names this many of the sidecars that route to a service, and counts the rest. */
const MAX_ROUTERS_NAMED = 3;

export interface MeshViewComponents {
  registry: Registry;
  gateways: GatewayRegistry;
  policies: PolicyService;
  reports: ReportStore;
  reportIntervalMs: number;
  /** Leaf lifetime: a certificate with under a quarter of it left is renewing late. */
  leafTtlMs: number;
  now: () => number;
  /** The config version the session of an owner key (sidecar id, `gw/<zone>/<name>`) acked last. */
  ackedVersionOf: (ownerKey: string) => number | undefined;
  /** The version last sent to a sender (scoped push: it trails the config's version). */
  sentVersionOf?: (ownerKey: string) => number | undefined;
}

export function buildMeshView(components: MeshViewComponents): MeshView {
  const { registry, gateways, policies, reports, now } = components;
  const generatedAt = now();
  const policyView = policies.view();
  const configVersion = policyView.version;
  const senders = reports.all();
  const sidecarReports = new Map<string, SenderReports>();
  const gatewayReports = new Map<string, SenderReports>();
  for (const sender of senders) {
    if (sender.identity.kind === 'sidecar') sidecarReports.set(sender.identity.sidecarId, sender);
    else gatewayReports.set(`${sender.identity.zone}/${sender.identity.name}`, sender);
  }
  const traffic = reports.traffic();
  const warnings: WarningView[] = [];
  const zones = new Set<string>();

  const byService = registry.servicesView().services;
  const routedBy = routersByService(sidecarReports);
  const sidecars: SidecarView[] = [];
  const services: ServiceView[] = [];
  const sidecarByAddress = new Map<string, string>();
  for (const name of new Set([...Object.keys(byService), ...Object.keys(traffic.services), ...routedBy.keys()])) {
    const endpoints: EndpointView[] = (byService[name] ?? []).map((e) => ({ ...e, zone: e.zone || 'default' }));
    const signals = traffic.services[name];
    services.push({
      name,
      zones: [...new Set(endpoints.map((e) => e.zone))].sort(),
      endpoints,
      connectionsPerSecond: signals?.connectionsPerSecond ?? 0,
      opened: signals?.opened ?? 0,
      active: signals?.active ?? 0,
      failuresPerSecond: signals?.failuresPerSecond ?? 0,
      failed: signals?.failed ?? {},
      connectMs: signals?.connectMs ?? { p50: null, p90: null, p99: null },
      durationMs: signals?.durationMs ?? { p50: null, p90: null, p99: null },
      bytes: signals?.bytes ?? 0,
      bytesPerSecond: signals?.bytesPerSecond ?? 0,
      routedBy: routedBy.get(name) ?? [],
    });
    const routers = routedBy.get(name);
    if (routers !== undefined && !endpoints.some((e) => e.healthy)) {
      const shown = routers.slice(0, MAX_ROUTERS_NAMED).join(', ') + (routers.length > MAX_ROUTERS_NAMED ? ` and ${routers.length - MAX_ROUTERS_NAMED} more` : '');
      warnings.push({ kind: 'no-healthy-endpoint', subject: name, message: `${name} has no healthy endpoint, and ${shown} route${routers.length === 1 ? 's' : ''} to it` });
    }
    for (const endpoint of endpoints) {
      zones.add(endpoint.zone);
      sidecarByAddress.set(linkHostPort(endpoint.address), endpoint.sidecarId);
      const report = sidecarReports.get(endpoint.sidecarId);
      sidecars.push({ ...sidecarView(name, endpoint, report, generatedAt), configVersionAcked: components.ackedVersionOf(endpoint.sidecarId) ?? null });
      if (!endpoint.healthy) warnings.push({ kind: 'endpoint-unhealthy', subject: endpoint.sidecarId, message: `${name} on ${endpoint.sidecarId} is unhealthy` });
      if (!endpoint.connected) warnings.push({ kind: 'endpoint-disconnected', subject: endpoint.sidecarId, message: `${name} on ${endpoint.sidecarId} lost its control-plane session; its endpoint goes when the lease ends` });
    }
  }
  services.sort((a, b) => a.name.localeCompare(b.name));
  sidecars.sort((a, b) => a.service.localeCompare(b.service) || a.sidecarId.localeCompare(b.sidecarId));

  const gatewaysView = gateways.view();
  const gatewayList: GatewayView[] = gatewaysView.gateways.map((g) => {
    zones.add(g.zone);
    const report = gatewayReports.get(`${g.zone}/${g.name}`);
    return {
      zone: g.zone,
      name: g.name,
      gatewayId: g.gatewayId,
      connected: g.connected,
      links: g.links,
      software: report?.latest.software ?? null,
      certExpiresAt: report?.latest.certExpiresAt ?? null,
      configVersion: report?.latest.configVersion ?? null,
      configVersionAcked: components.ackedVersionOf(`gw/${g.zone}/${g.name}`) ?? null,
      certRenewalFailing: report?.latest.certRenewalFailing ?? null,
    };
  });

  const links: LinkView[] = [];
  for (const [sidecarId, sender] of sidecarReports) {
    for (const peer of sender.latest.peers) {
      const toSidecarId = sidecarByAddress.get(linkHostPort(peer.peer));
      if (toSidecarId !== undefined && toSidecarId !== sidecarId) links.push({ fromSidecarId: sidecarId, toSidecarId, rttMs: peer.rttMs });
    }
  }

  for (const sender of senders) {
    const subject = sender.identity.kind === 'sidecar' ? sender.identity.sidecarId : `${sender.identity.zone}/${sender.identity.name}`;
    const { latest, previous } = sender;
    // What it should apply is what was sent to it (a scoped push sends each sidecar only its
    // share). One report behind can be a change on its way; two in a row is a sidecar not applying config.
    const ownerKey = sender.identity.kind === 'sidecar' ? sender.identity.sidecarId : `gw/${sender.identity.zone}/${sender.identity.name}`;
    const expected = components.sentVersionOf?.(ownerKey) ?? configVersion;
    if (latest.configVersion < expected && previous !== undefined && previous.report.configVersion < expected) {
      warnings.push({ kind: 'config-behind', subject, message: `${subject} applies config version ${latest.configVersion}, not ${expected}` });
    }
    if (latest.certExpiresAt - generatedAt < components.leafTtlMs / 4) {
      const minutes = Math.max(0, Math.round((latest.certExpiresAt - generatedAt) / 60_000));
      warnings.push({ kind: 'cert-expiring', subject, message: `the certificate of ${subject} expires in ${minutes} min` });
    }
    if (latest.certRenewalFailing === true) {
      warnings.push({ kind: 'cert-renewal-failing', subject, message: `${subject} cannot renew its certificate (it expires ${new Date(latest.certExpiresAt).toISOString()})` });
    }
    for (const ejection of latest.ejections) {
      const before = previous?.report.ejections.find((e) => e.service === ejection.service)?.count ?? 0;
      if (ejection.count > before) warnings.push({ kind: 'endpoint-ejected', subject, message: `${subject} ejected ${ejection.count - before} endpoint(s) of ${ejection.service}` });
    }
  }

  return {
    generatedAt,
    configVersion,
    reportIntervalMs: components.reportIntervalMs,
    zones: [...zones].sort(),
    services,
    sidecars,
    gateways: gatewayList,
    edges: traffic.edges,
    links,
    policies: policyView,
    warnings,
  };
}

function sidecarView(service: string, endpoint: Omit<EndpointValue, 'service'> & { connected: boolean }, report: SenderReports | undefined, now: number): Omit<SidecarView, 'configVersionAcked'> {
  const latest = report?.latest;
  return {
    sidecarId: endpoint.sidecarId,
    service,
    zone: endpoint.zone || 'default',
    software: latest?.software ?? null,
    healthy: endpoint.healthy && latest?.appHealthy !== false,
    connected: endpoint.connected,
    certExpiresAt: latest?.certExpiresAt ?? null,
    configVersion: latest?.configVersion ?? null,
    linksActive: latest?.linksActive ?? null,
    streamsActive: latest === undefined ? null : latest.streamsActive.inbound + latest.streamsActive.outbound,
    reportAgeMs: report === undefined ? null : Math.max(0, now - report.receivedAtMs),
    certRenewalFailing: latest?.certRenewalFailing ?? null,
    routes: latest?.routes ?? [],
  };
}

/** Sidecar ids by the service they report routing to, each list sorted. */
function routersByService(sidecarReports: Map<string, SenderReports>): Map<string, string[]> {
  const routers = new Map<string, string[]>();
  for (const [sidecarId, sender] of sidecarReports) {
    for (const service of sender.latest.routes ?? []) routers.set(service, [...(routers.get(service) ?? []), sidecarId]);
  }
  for (const list of routers.values()) list.sort();
  return routers;
}

/** `tls://h:p`, `wss://h:p/path` and `h:p` all name the listener `h:p`. */
function linkHostPort(address: string): string {
  const withoutScheme = address.replace(/^(tls|wss):\/\//, '');
  const slash = withoutScheme.indexOf('/');
  return slash === -1 ? withoutScheme : withoutScheme.slice(0, slash);
}
