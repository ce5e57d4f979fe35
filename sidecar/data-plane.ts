import type { Logger } from 'pino';
import { gatewayKey } from '../proto/names.js';
import type { BalancingOptions, EndpointStats } from './balancer/index.js';
import { HashRingBalancer } from './balancer/index.js';
import type { MeshConfig } from './config/mesh-config.js';
import type { Credentials } from './identity/credentials.js';
import { InboundHandler } from './forward/inbound.js';
import type { EndpointSubscriptions, UpstreamListener } from './forward/outbound.js';
import { OutboundForwarder } from './forward/outbound.js';
import type { ProxyListener } from './forward/proxy/index.js';
import { startProxyListener } from './forward/proxy/index.js';
import type { StreamQuotaLimits } from './forward/stream-quota.js';
import { StreamQuota } from './forward/stream-quota.js';
import type { Connector } from './links/connector.js';
import { LinkManager } from './links/link-manager.js';
import { LinkTls } from './links/link-tls.js';
import type { ListenerLimits } from './links/listener-guard.js';
import { ListenerGuard } from './links/listener-guard.js';
import type { LinkUrl } from './links/link-url.js';
import { MeshDialer } from './links/mesh-dialer.js';
import { RevokedPeers } from './links/revoked-peers.js';
import { createLinkTransport } from './links/transports.js';
import type { LinkListener } from './links/transport.js';
import type { SidecarMetrics } from './metrics/metrics.js';
import type { HostPort } from './net/address.js';
import { PathSelector } from './tunnel/path-selector.js';
import { TunnelAcceptor } from './tunnel/tunnel-acceptor.js';
import { TunnelDialer } from './tunnel/tunnel-dialer.js';

/** The settings of a sidecar's forwarding half: plain data, so that they can cross to a worker process. */
export interface DataPlaneSettings {
  service: string;
  /** Link listener for other sidecars and this zone's gateways (`tls://…` or `wss://…`). */
  listen: LinkUrl;
  /** The local app that inbound streams reach. */
  app?: HostPort;
  upstreams: { service: string; local: HostPort }[];
  /** A SOCKS5 and HTTP proxy port through which apps reach `<service>.mesh`. */
  proxy?: HostPort;
  /** @default 'default' */
  zone?: string;
  balancing?: BalancingOptions;
  /** Time to dial a link to another sidecar (TCP and TLS). @default 5000 */
  connectTimeoutMs?: number;
  /** Outbound streams with no bytes either way for this long are reset (IDLE_TIMEOUT). @default none */
  idleTimeoutMs?: number;
  inboundStreams?: StreamQuotaLimits;
  linkListener?: ListenerLimits;
}

/** What the data plane takes from the process that runs it. */
export interface DataPlaneComponents {
  credentials: Credentials;
  config: MeshConfig;
  /** Where a first connection to a service asks for its endpoints. */
  subscriptions: EndpointSubscriptions;
  metrics: SidecarMetrics;
  logger: Logger;
  /** Links to gateways go through this HTTP CONNECT proxy (corporate egress). @default direct */
  egress?: Connector;
}

/** What is left to report of the data plane, for `/status`. */
export interface DataPlaneStatus {
  outboundLinks: number;
  gatewayLinks: number;
  gatewayRtts: ReturnType<PathSelector['rtts']>;
  /** Load per upstream service, by endpoint. */
  load: Record<string, EndpointStats[]>;
  /** With several workers: what each one holds. */
  workers?: WorkerStatus[];
}

/** One forwarding worker's share, in `/status`. */
export interface WorkerStatus {
  index: number;
  pid: number;
  outboundLinks: number;
  gatewayLinks: number;
  streamsActive: { inbound: number; outbound: number };
}

/**
 * Where a sidecar's traffic is forwarded: a data plane in the process itself, or a pool of
 * worker processes that each run one.
 */
export interface ForwardingPlane {
  /** The bound link listener, as a URL. */
  readonly linkUrl: string;
  readonly upstreams: readonly BoundUpstream[];
  readonly proxyAddress: string | undefined;
  status(): Promise<DataPlaneStatus>;
  /**
   * Stops accepting, sends GOAWAY on every link, and resolves with whether every open stream
   * finished by `deadline` (ms since the epoch). Closing stays with the caller.
   */
  drain(deadline: number): Promise<boolean>;
  close(): Promise<void>;
}

/** An upstream port as bound. */
export interface BoundUpstream {
  readonly service: string;
  /** `host:port`. */
  readonly address: string;
}

/** A running data plane: listeners, links, and the forwarding in both directions. */
export interface DataPlane extends ForwardingPlane {
  readonly upstreams: readonly UpstreamListener[];
}

/** Links to gateways are pinged this often (ms): a dead gateway is noticed within three. */
const GATEWAY_PING_INTERVAL_MS = 1000;

/**
 * Starts the forwarding half of a sidecar: the link listener, the upstream and proxy ports, the
 * links to peers and gateways, and the inbound and outbound paths, following `config` and
 * `credentials` as they change. The control-plane session lives elsewhere.
 */
export async function startDataPlane(settings: DataPlaneSettings, components: DataPlaneComponents): Promise<DataPlane> {
  const { credentials, config, metrics, logger, subscriptions } = components;
  const { sidecarId } = credentials.current;
  const balancer = new HashRingBalancer({ ...settings.balancing, observer: metrics });
  config.on('services', (services: Set<string>) => {
    for (const service of services) balancer.update(service, config.endpoints(service));
  });
  // Endpoints already held (a cached config) are on the ring from the start.
  for (const service of config.servicesWithEndpoints()) balancer.update(service, config.endpoints(service));
  const zone = settings.zone ?? 'default';
  const listenerGuard = new ListenerGuard(settings.linkListener, (reason) => metrics.linkRefused(reason));
  const revokedPeers = new RevokedPeers({ revocations: config, onRefused: () => metrics.linkRefused('revoked'), logger });
  const transport = createLinkTransport(credentials, { dialTimeoutMs: settings.connectTimeoutMs, listenerGuard, revokedPeers });
  const gatewayTransport = components.egress === undefined ? transport : createLinkTransport(credentials, { dialTimeoutMs: settings.connectTimeoutMs, connector: components.egress, revokedPeers });
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
    onGoAway: (target) => {
      if (target.peer.kind === 'gateway') paths.draining(gatewayKey(target.peer.zone, target.peer.name));
    },
  });
  const tunnels = new TunnelDialer({ zone, sidecarId, config, gatewayLinks, tls: linkTls, paths, logger });
  const links = new LinkManager({ dialer: new MeshDialer(transport, tunnels), metrics, logger, revokedPeers });
  const inbound: InboundHandler = new InboundHandler({
    service: settings.service,
    app: settings.app,
    isAllowed: (from, to) => config.policy.allows(from, to),
    closesOpen: (from, to) => config.policy.closesOpen(from, to),
    revokedPeers,
    metrics,
    logger,
    streamQuota: new StreamQuota(settings.inboundStreams),
    tunnels: new TunnelAcceptor({
      sidecarId,
      tls: linkTls,
      accept: (link) => inbound.accept(link),
      onRefused: (reason) => metrics.tunnelRefused(reason),
      logger,
    }),
  });
  config.on('policy', () => inbound.resetDenied());
  const outbound = new OutboundForwarder({
    subscriptions,
    balancer,
    links,
    metrics,
    logger,
    hashPolicies: settings.balancing?.hashPolicies,
    idleTimeoutMs: settings.idleTimeoutMs,
  });

  const closers: (() => Promise<void> | void)[] = [];
  let closing: Promise<void> | undefined;
  // Idempotent: a drain ends in close(), and a caller may close again.
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      for (const closer of [...closers].reverse()) await closer();
    })());
  try {
    const linkListener: LinkListener = await transport.listen(settings.listen, (link) => inbound.accept(link));
    closers.push(() => linkListener.close(), () => inbound.close());
    const upstreams: UpstreamListener[] = [];
    closers.push(() => outbound.close(), () => links.close(), () => gatewayLinks.close());
    for (const upstream of settings.upstreams) upstreams.push(await outbound.listen(upstream.service, upstream.local));
    let proxy: ProxyListener | undefined;
    if (settings.proxy !== undefined) {
      const proxyListener = await startProxyListener({
        listen: settings.proxy,
        forwarder: outbound,
        logger,
        onRefused: (reason) => metrics.proxyRefused(reason),
      });
      closers.push(() => proxyListener.close());
      proxy = proxyListener;
    }
    return {
      linkUrl: linkListener.url,
      upstreams,
      proxyAddress: proxy?.address,
      status: () =>
        Promise.resolve({
          outboundLinks: links.size,
          gatewayLinks: gatewayLinks.size,
          gatewayRtts: paths.rtts(),
          load: Object.fromEntries(upstreams.map((u) => [u.service, balancer.endpointStats(u.service)])),
        }),
      drain: async (deadline) => {
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
        return complete;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
