import type { Logger } from 'pino';
import { TrellisError } from '../proto/errors.js';
import { gatewayKey } from '../proto/names.js';
import type { JoinToken } from '../proto/tokens.js';
import type { AdminServer } from './admin-server.js';
import { startAdminServer } from './admin-server.js';
import type { BalancingOptions } from './balancer/index.js';
import { HashRingBalancer } from './balancer/index.js';
import { MeshConfig } from './config/mesh-config.js';
import { ControlSession } from './control/control-session.js';
import { sidecarRegistration } from './control/registration.js';
import { Reporter } from './control/reporter.js';
import { ConfigSubscriptions } from './config/subscriptions.js';
import type { AppHealth, HealthCheckOptions } from './health/index.js';
import { startAppHealthChecks } from './health/index.js';
import { CertificateRenewer } from './identity/renewer.js';
import { followTrustBundle } from './identity/trust-follower.js';
import { Credentials } from './identity/credentials.js';
import type { KeptState } from './identity/state-dir.js';
import { keepStateIn, loadUsableCredentials, SidecarStateDir } from './identity/state-dir.js';
import { InboundHandler } from './forward/inbound.js';
import type { StreamQuotaLimits } from './forward/stream-quota.js';
import { StreamQuota } from './forward/stream-quota.js';
import type { UpstreamListener } from './forward/outbound.js';
import type { ProxyListener } from './forward/proxy/index.js';
import { startProxyListener } from './forward/proxy/index.js';
import { OutboundForwarder } from './forward/outbound.js';
import { joinMesh } from './join.js';
import { LinkManager } from './links/link-manager.js';
import type { Connector } from './links/connector.js';
import { LinkTls } from './links/link-tls.js';
import type { ListenerLimits } from './links/listener-guard.js';
import { ListenerGuard } from './links/listener-guard.js';
import type { LinkUrl } from './links/link-url.js';
import { parseLinkUrl } from './links/link-url.js';
import { MeshDialer } from './links/mesh-dialer.js';
import { RevokedPeers } from './links/revoked-peers.js';
import { createLinkTransport } from './links/transports.js';
import type { LinkListener } from './links/transport.js';
import { PathSelector } from './tunnel/path-selector.js';
import { TunnelAcceptor } from './tunnel/tunnel-acceptor.js';
import { TunnelDialer } from './tunnel/tunnel-dialer.js';
import { PrometheusSidecarMetrics } from './metrics/index.js';
import type { HostPort } from './net/address.js';

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
  logger: Logger;
}

export interface Sidecar {
  readonly linkAddress: string;
  readonly adminAddress: string | undefined;
  readonly upstreams: readonly UpstreamListener[];
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

/** Links to gateways are pinged this often (ms): a dead gateway is noticed within three. */
const GATEWAY_PING_INTERVAL_MS = 1000;

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
  const balancer = new HashRingBalancer({ ...init.balancing, observer: metrics });
  config.on('services', (services: Set<string>) => {
    for (const service of services) balancer.update(service, config.endpoints(service));
  });
  config.on('version', (version: number) => metrics.configVersion(version));
  let configReady = false;
  config.once('version', () => (configReady = true));
  const kept: KeptState | undefined = stateDir === undefined ? undefined : await keepStateIn(stateDir, config, credentials, logger);

  const zone = init.zone ?? 'default';
  const listenerGuard = new ListenerGuard(init.linkListener, (reason) => metrics.linkRefused(reason));
  const revokedPeers = new RevokedPeers({ revocations: config, onRefused: () => metrics.linkRefused('revoked'), logger });
  const transport = createLinkTransport(credentials, { dialTimeoutMs: init.connectTimeoutMs, listenerGuard, revokedPeers });
  const gatewayTransport = init.egress === undefined ? transport : createLinkTransport(credentials, { dialTimeoutMs: init.connectTimeoutMs, connector: init.egress, revokedPeers });
  const linkTls = new LinkTls(credentials);
  const paths = new PathSelector();
  // Links to this zone's gateways carry tunnels: pinged every second so a dead one is noticed fast.
  const gatewayLinks = new LinkManager({
    dialer: gatewayTransport,
    metrics,
    logger,
    revokedPeers,
    pingIntervalMs: GATEWAY_PING_INTERVAL_MS,
    onRtt: (target, rttMs) => {
      if (target.peer.kind === 'gateway') paths.observeRtt(gatewayKey(target.peer.zone, target.peer.name), rttMs);
    },
    onLinkDown: (target) => {
      if (target.peer.kind === 'gateway') paths.failed(gatewayKey(target.peer.zone, target.peer.name));
    },
  });
  const tunnels = new TunnelDialer({ zone, sidecarId, config, gatewayLinks, tls: linkTls, paths, logger });
  const links = new LinkManager({ dialer: new MeshDialer(transport, tunnels), metrics, logger, revokedPeers });
  const inbound: InboundHandler = new InboundHandler({
    service: init.service,
    app: init.app,
    isAllowed: (from, to) => config.policy.allows(from, to),
    closesOpen: (from, to) => config.policy.closesOpen(from, to),
    revokedPeers,
    metrics,
    logger,
    streamQuota: new StreamQuota(init.inboundStreams),
    tunnels: new TunnelAcceptor({
      sidecarId,
      tls: linkTls,
      accept: (link) => inbound.accept(link),
      onRefused: (reason) => metrics.tunnelRefused(reason),
      logger,
    }),
  });
  config.on('policy', () => inbound.resetDenied());
  // Scoped push: the upstreams' endpoints from the start, proxy-port destinations on first use.
  const subscriptions = new ConfigSubscriptions(init.upstreams.map((upstream) => upstream.service));
  const outbound = new OutboundForwarder({
    subscriptions,
    balancer,
    links,
    metrics,
    logger,
    hashPolicies: init.balancing?.hashPolicies,
    idleTimeoutMs: init.idleTimeoutMs,
  });

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
    const linkListener: LinkListener = await transport.listen(init.listen, (link) => inbound.accept(link));
    closers.push(() => linkListener.close(), () => inbound.close());
    const upstreams: UpstreamListener[] = [];
    closers.push(() => outbound.close(), () => links.close(), () => gatewayLinks.close());
    for (const upstream of init.upstreams) upstreams.push(await outbound.listen(upstream.service, upstream.local));
    let proxy: ProxyListener | undefined;
    if (init.proxy !== undefined) {
      const proxyListener = await startProxyListener({
        listen: init.proxy,
        forwarder: outbound,
        logger,
        onRefused: (reason) => metrics.proxyRefused(reason),
      });
      closers.push(() => proxyListener.close());
      proxy = proxyListener;
    }

    let appHealth: AppHealth | undefined;
    const session = new ControlSession({
      urls: init.controlPlaneUrls,
      credentials,
      config,
      logger,
      subscriptions,
      // Without checks the sidecar vouches for its app as soon as it serves.
      registration: sidecarRegistration({ address: init.advertise ?? registeredAddress(linkListener.url), zone, weight: init.weight ?? 1 }, () => appHealth?.healthy ?? true),
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
    const reporter = new Reporter({ channel: session, metrics: metrics.registry, state: reporterState, logger });
    closers.push(() => reporter.stop());
    followTrustBundle({ config, credentials, renewer, logger });

    const isReady = (): boolean => configReady;
    let admin: AdminServer | undefined;
    if (init.admin !== undefined) {
      admin = await startAdminServer({
        listen: init.admin,
        metrics,
        isReady,
        status: () => ({
          service: init.service,
          sidecarId,
          ready: isReady(),
          controlPlaneConnected: session.connected,
          configVersion: config.version,
          configFromCache: kept?.servingFromCache ?? false,
          certExpiresAt: new Date(credentials.current.expiresAt).toISOString(),
          certRenewalFailing: renewer.failing,
          zone,
          linkAddress: registeredAddress(linkListener.url),
          gatewayRtts: paths.rtts(),
          upstreams: upstreams.map((u) => ({ service: u.service, address: u.address, endpoints: config.endpoints(u.service), load: balancer.endpointStats(u.service) })),
          appHealthy: appHealth?.healthy,
          proxyAddress: proxy?.address,
          outboundLinks: links.size,
          gatewayLinks: gatewayLinks.size,
        }),
      });
      const adminServer = admin;
      closers.push(() => adminServer.close());
    }
    return {
      linkAddress: registeredAddress(linkListener.url),
      adminAddress: admin?.address,
      upstreams,
      proxyAddress: proxy?.address,
      credentials,
      config,
      isReady,
      drain: async ({ propagationMs = DEFAULT_DRAIN_PROPAGATION_MS, deadlineMs = DEFAULT_DRAIN_DEADLINE_MS } = {}) => {
        const deadline = Date.now() + deadlineMs;
        logger.info({ propagationMs, deadlineMs }, 'draining');
        session.deregister();
        await delay(Math.min(propagationMs, deadlineMs));
        outbound.stopAccepting();
        proxy?.stopAccepting();
        void linkListener.close();
        links.drain();
        gatewayLinks.drain();
        inbound.drain();
        // Then the links' sockets, which still hold the last frames of the streams just done.
        const finished = Promise.all([outbound.whenIdle(), inbound.whenIdle()])
          .then(() => Promise.all([links.whenClosed(), gatewayLinks.whenClosed()]))
          .then(() => true);
        const complete = await Promise.race([finished, delay(Math.max(0, deadline - Date.now())).then(() => false)]);
        logger.info({ complete, unfinishedConnections: outbound.activeConnections, unfinishedInboundLinks: inbound.activeLinks }, 'drained');
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

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
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
