import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { gatewayKey } from '../../proto/names.js';
import type { GatewayToken } from '../../proto/tokens.js';
import { TrellisError } from '../../proto/errors.js';
import type { AdminServer } from '../admin-server.js';
import { startAdminServer } from '../admin-server.js';
import { MeshConfig } from '../config/mesh-config.js';
import { ControlSession } from '../control/control-session.js';
import { Reporter } from '../control/reporter.js';
import type { CredentialsInit } from '../identity/credentials.js';
import { Credentials } from '../identity/credentials.js';
import { CertificateRenewer } from '../identity/renewer.js';
import type { KeptState } from '../identity/state-dir.js';
import { keepStateIn, loadUsableCredentials, SidecarStateDir } from '../identity/state-dir.js';
import { followTrustBundle } from '../identity/trust-follower.js';
import type { Connector } from '../links/connector.js';
import type { StreamQuotaLimits } from '../forward/stream-quota.js';
import { StreamQuota } from '../forward/stream-quota.js';
import { LinkManager } from '../links/link-manager.js';
import { RevokedPeers, withRevocationChecks } from '../links/revoked-peers.js';
import type { ListenerLimits } from '../links/listener-guard.js';
import { ListenerGuard } from '../links/listener-guard.js';
import type { LinkUrl } from '../links/link-url.js';
import { createLinkTransport } from '../links/transports.js';
import type { LinkListener } from '../links/transport.js';
import { PrometheusSidecarMetrics } from '../metrics/index.js';
import type { HostPort } from '../net/address.js';
import { joinAsGateway } from './join-gateway.js';
import { PeerLinks } from './peer-links.js';
import { Relay } from './relay.js';

export interface GatewayInit {
  zone: string;
  name: string;
  controlPlaneUrls: string[];
  /** The gateway token; needed unless the data dir holds a valid identity. */
  token?: { raw: string; parsed: GatewayToken };
  /** Link listeners (`tls://…`, `wss://…`), for this zone's sidecars and other zones' gateways. */
  listen: LinkUrl[];
  /** What to advertise, tried in order by peers. @default the bound listen URLs */
  advertise?: string[];
  admin?: HostPort;
  dataDir?: string;
  /** Dials to other gateways go through this HTTP CONNECT proxy. @default direct */
  egress?: Connector;
  /** Time to dial a link (TCP and TLS). @default 5000 */
  connectTimeoutMs?: number;
  /** Handshake timeout and caps shared by every link listener. @default the defaults of `ListenerLimits` */
  linkListener?: ListenerLimits;
  /** Tunnel streams peers may open at once, per peer identity and in all. @default 10,000 per peer, 16,000 in all */
  tunnelStreams?: StreamQuotaLimits;
  logger: Logger;
}

export interface Gateway {
  /** The bound listener URLs. */
  readonly listenUrls: readonly string[];
  readonly adminAddress: string | undefined;
  readonly config: MeshConfig;
  isReady(): boolean;
  /**
   * Graceful stop: accepts no link, asks both ends of every tunnel it carries to move
   * (TUNNEL_DRAIN) and takes no new tunnel (GOAWAY), waits up to `deadlineMs` for its tunnels to
   * finish, then closes. `complete` is false when tunnels were still open at the deadline (they
   * are reset, on both ends).
   */
  drain(options?: { deadlineMs?: number }): Promise<{ complete: boolean }>;
  close(): Promise<void>;
}

/** @default 30 s, as a sidecar's drain: the streams of a tunnel finish on it, the new ones move. */
const DEFAULT_DRAIN_DEADLINE_MS = 30_000;

/**
 * Starts a gateway: joins as `gw/<zone>/<name>` (or reuses its saved identity), listens,
 * registers its addresses, keeps links to the gateways of other zones, and relays tunnels
 * between them and the sidecars of its zone, reading none of what they carry.
 */
export async function startGateway(init: GatewayInit): Promise<Gateway> {
  const { logger } = init;
  const self = gatewayKey(init.zone, init.name);
  const stateDir = init.dataDir === undefined ? undefined : new SidecarStateDir(init.dataDir);
  const credentials = new Credentials(await obtainGatewayCredentials(init, stateDir));
  logger.info({ gateway: self, gatewayId: credentials.current.sidecarId, spiffeId: credentials.spiffeId }, 'identity ready');

  const metrics = new PrometheusSidecarMetrics({ service: `gw-${init.zone}-${init.name}` });
  metrics.certExpiry(credentials.current.expiresAt);
  credentials.on('change', () => metrics.certExpiry(credentials.current.expiresAt));
  const config = new MeshConfig();
  let configReady = false;
  config.once('version', () => (configReady = true));
  config.on('version', (version: number) => metrics.configVersion(version));
  const kept: KeptState | undefined = stateDir === undefined ? undefined : await keepStateIn(stateDir, config, credentials, logger);

  const listenerGuard = new ListenerGuard(init.linkListener, (reason) => metrics.linkRefused(reason));
  const revokedPeers = new RevokedPeers({ revocations: config, onRefused: () => metrics.linkRefused('revoked'), logger });
  const transport = createLinkTransport(credentials, { dialTimeoutMs: init.connectTimeoutMs, listenerGuard, revokedPeers });
  const egressTransport = init.egress === undefined ? transport : createLinkTransport(credentials, { dialTimeoutMs: init.connectTimeoutMs, connector: init.egress, revokedPeers });
  let session: ControlSession | undefined;
  const peers: PeerLinks = new PeerLinks({
    zone: init.zone,
    self,
    config,
    transport: withRevocationChecks(egressTransport, revokedPeers),
    relay: (): Relay => relay,
    metrics,
    logger,
    streamQuota: new StreamQuota(init.tunnelStreams),
    onPeersChanged: (keys) => session?.send({ type: 'gateway-links', peers: keys }),
  });
  const sidecarLinks = new LinkManager({ dialer: transport, metrics, logger, pingIntervalMs: 1000, revokedPeers });
  const relay: Relay = new Relay({ self, config, peerSession: (key) => peers.session(key), sidecarLinks, metrics, logger });

  const closers: (() => Promise<void> | void)[] = [() => peers.close(), () => sidecarLinks.close()];
  // Closed last, after the control session: the final version reaches the disk.
  if (kept !== undefined) closers.unshift(() => kept.close());
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => (closing ??= (async () => {
    for (const closer of [...closers].reverse()) await closer();
  })());
  try {
    const listeners: LinkListener[] = [];
    for (const url of init.listen) {
      const listener = await withRevocationChecks(transport, revokedPeers).listen(url, (link) => peers.accept(link));
      listeners.push(listener);
    }
    let listenersClosed: Promise<void> | undefined;
    const closeListeners = (): Promise<void> => (listenersClosed ??= Promise.all(listeners.map((listener) => listener.close())).then(() => undefined));
    closers.push(closeListeners);
    const listenUrls = listeners.map((listener) => listener.url);
    const controlSession = new ControlSession({
      urls: init.controlPlaneUrls,
      credentials,
      config,
      logger,
      registration: { type: 'register-gateway', addresses: init.advertise ?? listenUrls },
    });
    session = controlSession;
    // After every (re)connect: the control plane learns the links again from the gateway itself.
    controlSession.on('connected', () => controlSession.send({ type: 'gateway-links', peers: peers.peers() }));
    controlSession.start();
    closers.push(() => controlSession.close());
    const renewer = new CertificateRenewer({ credentials, session: controlSession, logger, metrics });
    closers.push(() => renewer.stop());
    // A gateway routes to no service: it relays tunnels between sidecars.
    const reporterState = { configVersion: () => config.version, certExpiresAt: () => credentials.current.expiresAt, appHealthy: () => undefined, certRenewalFailing: () => renewer.failing, routes: () => [] };
    const reporter = new Reporter({ channel: controlSession, metrics: metrics.registry, state: reporterState, logger });
    closers.push(() => reporter.stop());
    followTrustBundle({ config, credentials, renewer, logger });

    const isReady = (): boolean => configReady;
    let draining = false;
    let admin: AdminServer | undefined;
    if (init.admin !== undefined) {
      admin = await startAdminServer({
        listen: init.admin,
        metrics,
        isReady,
        status: () => ({
          gateway: self,
          gatewayId: credentials.current.sidecarId,
          ready: isReady(),
          controlPlaneConnected: controlSession.connected,
          configVersion: config.version,
          configFromCache: kept?.servingFromCache ?? false,
          certExpiresAt: new Date(credentials.current.expiresAt).toISOString(),
          certRenewalFailing: renewer.failing,
          listen: listenUrls,
          advertise: init.advertise ?? listenUrls,
          peerGateways: peers.peers(),
          sidecarLinks: sidecarLinks.size,
          tunnels: relay.activeTunnels,
          draining,
        }),
      });
      const adminServer = admin;
      closers.push(() => adminServer.close());
    }
    const drain = async ({ deadlineMs = DEFAULT_DRAIN_DEADLINE_MS }: { deadlineMs?: number } = {}): Promise<{ complete: boolean }> => {
      const deadline = Date.now() + deadlineMs;
      draining = true;
      logger.info({ deadlineMs, tunnels: relay.activeTunnels }, 'draining');
      await closeListeners();
      // The ends move first, then no link takes a new tunnel; the control plane routes around this gateway.
      relay.drain();
      peers.drain();
      sidecarLinks.drain();
      // Then the links' sockets, which still hold the last frames of the tunnels just done.
      const finished = relay
        .whenIdle()
        .then(() => Promise.all([peers.whenClosed(), sidecarLinks.whenClosed()]))
        .then(() => true);
      const complete = await Promise.race([finished, sleep(Math.max(0, deadline - Date.now()), false, { ref: false })]);
      logger.info({ complete, unfinishedTunnels: relay.activeTunnels }, 'drained');
      await close();
      return { complete };
    };
    return { listenUrls, adminAddress: admin?.address, config, isReady, drain, close };
  } catch (error) {
    await close();
    throw error;
  }
}

async function obtainGatewayCredentials(init: GatewayInit, stateDir: SidecarStateDir | undefined): Promise<CredentialsInit> {
  const saved = await loadUsableCredentials(stateDir, init.logger);
  // A saved identity of the same gateway that is still valid lets it start while the control plane is away.
  if (saved?.gateway !== undefined && saved.gateway.zone === init.zone && saved.gateway.name === init.name && saved.expiresAt > Date.now() + 60_000) return saved;
  if (init.token === undefined) {
    throw new TrellisError('TRELLIS_ERR_NO_TOKEN', 'a gateway token is needed: the data directory holds no valid identity for this gateway');
  }
  const joined = await joinAsGateway(init.controlPlaneUrls, init.token.parsed, init.token.raw, init.zone, init.name);
  await stateDir?.saveCredentials(joined);
  return joined;
}
