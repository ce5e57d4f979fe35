/**
 * The dashboard's view of the mesh: what `GET /ui/api/mesh` answers, shared by the control
 * plane that builds it and the page that draws it (types only).
 */
import type { PoliciesView } from '../../proto/control.js';

export interface MeshView {
  /** When the view was made (ms since the epoch). */
  generatedAt: number;
  configVersion: number;
  /** How often sidecars report, so the page knows what "live" means. */
  reportIntervalMs: number;
  zones: string[];
  services: ServiceView[];
  sidecars: SidecarView[];
  gateways: GatewayView[];
  /** Traffic between services (from the callers' reports). */
  edges: TrafficEdgeView[];
  /** Links between sidecars with their last RTT (from the reports). */
  links: LinkView[];
  policies: PoliciesView;
  warnings: WarningView[];
}

export interface Percentiles { p50: number | null; p90: number | null; p99: number | null }

export interface ServiceView {
  name: string;
  /** The zones its endpoints are in. */
  zones: string[];
  endpoints: EndpointView[];
  connectionsPerSecond: number;
  opened: number;
  active: number;
  failuresPerSecond: number;
  /** Failures since the callers started, by wire code name. */
  failed: Record<string, number>;
  connectMs: Percentiles;
  durationMs: Percentiles;
  bytes: number;
  bytesPerSecond: number;
  /** The sidecars (ids) that report routing to it: its upstream, or a proxy-port destination in use. */
  routedBy: string[];
}

export interface EndpointView {
  sidecarId: string;
  address: string;
  zone: string;
  weight: number;
  healthy: boolean;
  connected: boolean;
}

export interface SidecarView {
  sidecarId: string;
  service: string;
  zone: string;
  /** The software version it reported; `null` before its first report. */
  software: string | null;
  healthy: boolean;
  connected: boolean;
  certExpiresAt: number | null;
  /** The config version it applies (from its report). */
  configVersion: number | null;
  /** The config version its session acked last; `null` without a session. */
  configVersionAcked: number | null;
  linksActive: number | null;
  streamsActive: number | null;
  reportAgeMs: number | null;
  /** Its last certificate renewal failed and no certificate came since; `null` when its report does not say. */
  certRenewalFailing: boolean | null;
  /** The services it routes to (from its report; empty before it). */
  routes: string[];
}

export interface GatewayView {
  zone: string;
  name: string;
  gatewayId: string;
  connected: boolean;
  /** Gateways of other zones it holds links to (`zone/name`). */
  links: string[];
  software: string | null;
  certExpiresAt: number | null;
  configVersion: number | null;
  configVersionAcked: number | null;
  /** As for sidecars: `null` when its report does not say. */
  certRenewalFailing: boolean | null;
}

export interface TrafficEdgeView { from: string; to: string; connectionsPerSecond: number; opened: number; active: number; failed: number }
export interface LinkView { fromSidecarId: string; toSidecarId: string; rttMs: number }

export interface WarningView {
  kind: 'config-behind' | 'endpoint-ejected' | 'endpoint-unhealthy' | 'endpoint-disconnected' | 'cert-expiring' | 'cert-renewal-failing' | 'no-healthy-endpoint';
  /** What it concerns: a sidecar id, `zone/name` of a gateway, or a service. */
  subject: string;
  message: string;
}
