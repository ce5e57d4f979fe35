import type { Logger } from 'pino';
import { TrellisError } from '../proto/errors.js';
import type { JoinToken } from '../proto/tokens.js';
import type { AdminServer, AdminServerInit } from './admin-server.js';
import { startAdminServer } from './admin-server.js';
import type { BalancingOptions } from './balancer/index.js';
import { MeshConfig } from './config/mesh-config.js';
import { ControlSession } from './control/control-session.js';
import { sidecarRegistration } from './control/registration.js';
import type { MetricsSource } from './control/reporter.js';
import { Reporter } from './control/reporter.js';
import { ConfigSubscriptions } from './config/subscriptions.js';
import type { BoundUpstream, DataPlaneSettings, ForwardingPlane } from './data-plane.js';
import { delay, startDataPlane } from './data-plane.js';
import type { AppHealth, HealthCheckOptions } from './health/index.js';
import { startAppHealthChecks } from './health/index.js';
import { CertificateRenewer } from './identity/renewer.js';
import { followTrustBundle } from './identity/trust-follower.js';
import { Credentials } from './identity/credentials.js';
import type { KeptState } from './identity/state-dir.js';
import { keepStateIn, loadUsableCredentials, SidecarStateDir } from './identity/state-dir.js';
import type { StreamQuotaLimits } from './forward/stream-quota.js';
import { joinMesh } from './join.js';
import type { Connector } from './links/connector.js';
import type { ListenerLimits } from './links/listener-guard.js';
import type { LinkUrl } from './links/link-url.js';
import { parseLinkUrl } from './links/link-url.js';
import { PrometheusSidecarMetrics } from './metrics/index.js';
import type { HostPort } from './net/address.js';
import { WorkerPool } from './workers/worker-pool.js';

export interface SidecarInit {
  service: string;
  /** Control-plane URLs, tried in turn. */
  controlPlaneUrls: string[];
  /** The join token (raw text and parsed); needed unless the data dir holds a valid identity. */
  token?: { raw: string; parsed: JoinToken };
  /** Link listener for other sidecars and this zone's gateways (`tls://…` or `wss://…`). */
  listen: LinkUrl;
  /** What to register as this sidecar's link address (`host:port` or a link URL). @default the bound listen address */
  advertise?: string;
  /** Links to gateways go through this HTTP CONNECT proxy (corporate egress). @default direct */
  egress?: Connector;
  /** The local app that inbound streams reach. */
  app?: HostPort;
  upstreams: { service: string; local: HostPort }[];
  /** A SOCKS5 and HTTP proxy port through which apps reach `<service>.mesh`. */
  proxy?: HostPort;
  admin?: HostPort;
  /** Keeps identity and last config across restarts. */
  dataDir?: string;
  zone?: string;
  weight?: number;
  /** Hash policies, bounded load, ejection of failing endpoints, stream limits. */
  balancing?: BalancingOptions;
  /** Time to dial a link to another sidecar (TCP and TLS). @default 5000 */
  connectTimeoutMs?: number;
  /** Outbound streams with no bytes either way for this long are reset (IDLE_TIMEOUT). @default none */
  idleTimeoutMs?: number;
  /** Active checks of `app`, reported to the control plane; ignored without `app`. */
  health?: HealthCheckOptions;
  /** Inbound streams at once, per caller identity (across its links) and in all. @default 10,000 per caller, 16,000 in all */
  inboundStreams?: StreamQuotaLimits;
  /** Handshake timeout and caps of the link listener. @default the defaults of `ListenerLimits` */
  linkListener?: ListenerLimits;
  /**
   * Forward in this many worker processes (2 or more) sharing the listeners; this process keeps
   * the identity, the control-plane session and the admin endpoint. @default forward in this process
   */
  workers?: { count: number; entry: string; entryOptions: unknown };
  logger: Logger;
}

export interface Sidecar {
  readonly linkAddress: string;
  readonly adminAddress: string | undefined;
  readonly upstreams: readonly BoundUpstream[];
  /** The proxy port's bound `host:port`, when one was asked for. */
  readonly proxyAddress: string | undefined;
  readonly credentials: Credentials;
  readonly config: MeshConfig;
  isReady(): boolean;
  /**
   * Graceful drain: deregisters, waits `propagationMs` for peers to stop picking this
   * endpoint, stops accepting, sends GOAWAY on every link, and lets open streams finish until
   * `deadlineMs` has passed since the call; then closes. Resolves with whether every stream
   * finished in time.
   */
  drain(options?: { propagationMs?: number; deadlineMs?: number }): Promise<{ complete: boolean }>;
  close(): Promise<void>;
}

/**
 * The address other sidecars dial: `host:port` for a TLS listener, as version-1 sidecars
 * expect, and the URL for a WebSocket one.
 */
function registeredAddress(url: string): string {
  const parsed = parseLinkUrl(url);
  return parsed.scheme === 'tls' ? url.slice('tls://'.length) : url;
}

/** @default 1000 — time for the endpoint's removal to reach the peers before GOAWAY. */
const DEFAULT_DRAIN_PROPAGATION_MS = 1000;
/** @default 30_000 */
const DEFAULT_DRAIN_DEADLINE_MS = 30_000;

/** Starts a sidecar: joins (or reuses its saved identity), listens, and follows the control plane. */
export async function startSidecar(init: SidecarInit): Promise<Sidecar> {
  const { logger } = init;
  const stateDir = init.dataDir === undefined ? undefined : new SidecarStateDir(init.dataDir);
  const credentials = new Credentials(await obtainCredentials(init, stateDir));
  const { sidecarId } = credentials.current;
  logger.info({ service: init.service, sidecarId, spiffeId: credentials.spiffeId }, 'identity ready');

  const metrics = new PrometheusSidecarMetrics({ service: init.service });
  metrics.certExpiry(credentials.current.expiresAt);
  credentials.on('change', () => metrics.certExpiry(credentials.current.expiresAt));
  const config = new MeshConfig();
  config.on('version', (version: number) => metrics.configVersion(version));
  let configReady = false;
  config.once('version', () => (configReady = true));
  const kept: KeptState | undefined = stateDir === undefined ? undefined : await keepStateIn(stateDir, config, credentials, logger);
  const zone = init.zone ?? 'default';
  // Scoped push: the upstreams' endpoints from the start, proxy-port destinations on first use.
  const subscriptions = new ConfigSubscriptions(init.upstreams.map((upstream) => upstream.service));

  const closers: (() => Promise<void> | void)[] = [];
  // Closed last, after the control session: the final version reaches the disk.
  if (kept !== undefined) closers.push(() => kept.close());
  let closing: Promise<void> | undefined;
  // Idempotent: a drain ends in close(), and a caller may close again.
  const close = (): Promise<void> => (closing ??= closeAll());
  const closeAll = async (): Promise<void> => {
    for (const closer of [...closers].reverse()) await closer();
  };
  try {
    let exposition: AdminServerInit['metrics'] & { readonly source: MetricsSource } = { render: () => metrics.render(), source: metrics.registry };
    let dataPlane: ForwardingPlane;
    if (init.workers === undefined) {
      dataPlane = await startDataPlane(init, { credentials, config, subscriptions, metrics, logger, egress: init.egress });
    } else {
      const pool = await WorkerPool.start({ ...init.workers, settings: dataPlaneSettings(init), credentials, config, subscriptions, registry: metrics.registry, logger });
      exposition = { render: () => pool.metrics.render(), source: pool.metrics };
      dataPlane = pool;
    }
    closers.push(() => dataPlane.close());
    const { upstreams } = dataPlane;

    let appHealth: AppHealth | undefined;
    const session = new ControlSession({
      urls: init.controlPlaneUrls,
      credentials,
      config,
      logger,
      subscriptions,
      // Without checks the sidecar vouches for its app as soon as it serves.
      registration: sidecarRegistration({ address: init.advertise ?? registeredAddress(dataPlane.linkUrl), zone, weight: init.weight ?? 1 }, () => appHealth?.healthy ?? true),
    });
    session.start();
    closers.push(() => session.close());
    closers.push(() => subscriptions.close());
    if (init.health !== undefined && init.app !== undefined) {
      const checks = startAppHealthChecks({ app: init.app, options: init.health, channel: session, logger });
      closers.push(() => checks.stop());
      appHealth = checks;
    }
    const renewer = new CertificateRenewer({ credentials, session, logger, metrics });
    closers.push(() => renewer.stop());
    const reporterState = {
      configVersion: () => config.version,
      certExpiresAt: () => credentials.current.expiresAt,
      appHealthy: () => appHealth?.healthy,
      certRenewalFailing: () => renewer.failing,
      routes: () => subscriptions.wanted,
    };
    const reporter = new Reporter({ channel: session, metrics: exposition.source, state: reporterState, logger });
    closers.push(() => reporter.stop());
    followTrustBundle({ config, credentials, renewer, logger });

    const isReady = (): boolean => configReady;
    let admin: AdminServer | undefined;
    if (init.admin !== undefined) {
      admin = await startAdminServer({
        listen: init.admin,
        metrics: exposition,
        isReady,
        status: async () => {
          const dataPlaneStatus = await dataPlane.status();
          return {
            service: init.service,
            sidecarId,
            ready: isReady(),
            controlPlaneConnected: session.connected,
            configVersion: config.version,
            configFromCache: kept?.servingFromCache ?? false,
            certExpiresAt: new Date(credentials.current.expiresAt).toISOString(),
            certRenewalFailing: renewer.failing,
            zone,
            linkAddress: registeredAddress(dataPlane.linkUrl),
            gatewayRtts: dataPlaneStatus.gatewayRtts,
            upstreams: upstreams.map((u) => ({ service: u.service, address: u.address, endpoints: config.endpoints(u.service), load: dataPlaneStatus.load[u.service] ?? [] })),
            appHealthy: appHealth?.healthy,
            proxyAddress: dataPlane.proxyAddress,
            outboundLinks: dataPlaneStatus.outboundLinks,
            gatewayLinks: dataPlaneStatus.gatewayLinks,
            ...(dataPlaneStatus.workers === undefined ? {} : { workers: dataPlaneStatus.workers }),
          };
        },
      });
      const adminServer = admin;
      closers.push(() => adminServer.close());
    }
    return {
      linkAddress: registeredAddress(dataPlane.linkUrl),
      adminAddress: admin?.address,
      upstreams,
      proxyAddress: dataPlane.proxyAddress,
      credentials,
      config,
      isReady,
      drain: async ({ propagationMs = DEFAULT_DRAIN_PROPAGATION_MS, deadlineMs = DEFAULT_DRAIN_DEADLINE_MS } = {}) => {
        const deadline = Date.now() + deadlineMs;
        logger.info({ propagationMs, deadlineMs }, 'draining');
        session.deregister();
        await delay(Math.min(propagationMs, deadlineMs));
        const complete = await dataPlane.drain(deadline);
        await close();
        return { complete };
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** The plain-data part of `init` that a forwarding worker needs. */
function dataPlaneSettings(init: SidecarInit): DataPlaneSettings {
  const { service, listen, app, upstreams, proxy, zone, balancing, connectTimeoutMs, idleTimeoutMs, inboundStreams, linkListener } = init;
  return { service, listen, app, upstreams, proxy, zone, balancing, connectTimeoutMs, idleTimeoutMs, inboundStreams, linkListener };
}

async function obtainCredentials(init: SidecarInit, stateDir: SidecarStateDir | undefined) {
  const saved = await loadUsableCredentials(stateDir, init.logger);
  // A saved identity of the same service that is still valid lets the sidecar start while
  // the control plane is away.
  if (saved !== undefined && saved.service === init.service && saved.expiresAt > Date.now() + 60_000) return saved;
  if (init.token === undefined) {
    throw new TrellisError('TRELLIS_ERR_NO_TOKEN', 'a join token is needed: the data directory holds no valid identity for this service');
  }
  const joined = await joinMesh(init.controlPlaneUrls, init.token.parsed, init.token.raw, init.service);
  await stateDir?.saveCredentials(joined);
  return joined;
}
