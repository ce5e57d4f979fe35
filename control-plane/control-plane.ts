/**
 * The control plane's wiring, in one place: data directory, listener, store (a file, or etcd
 * shared with other replicas), CA, tokens, config, the registries of endpoints and gateways,
 * the leader's duties, the REST routes and the sidecar channel, and metrics.
 *
 * What can fail cheaply is checked first: options, the data directory, the listening port and
 * the encryption key file, before a CA or an admin token is written.
 */
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import { ControlErrorCode, DEFAULT_TRUST_DOMAIN } from '../proto/control.js';
import { MAX_RECONNECT_DELAY_MS, MAX_REPORT_INTERVAL_MS, MIN_REPORT_INTERVAL_MS } from '../proto/control.js';
import { TrellisError, ValidationError } from '../proto/errors.js';
import { adminRoutes } from './api/admin-routes.js';
import { meshViewRoutes, withDashboard } from './api/dashboard-routes.js';
import { publicRoutes } from './api/public-routes.js';
import { tokenRoutes } from './api/token-routes.js';
import { createRequestHandler } from './api/router.js';
import { CertificateAuthority } from './ca.js';
import type { BundleAcks } from './ca-acks.js';
import { LocalBundleAcks, SharedBundleAcks } from './ca-acks.js';
import { CaRotation, caRoutes } from './ca-rotation.js';
import { StoreCaPersistence } from './ca-store.js';
import { issueServerCertificate } from './cert-issuer.js';
import { ConfigPublisher } from './config-publisher.js';
import { ConfigState } from './config-state.js';
import { DataDirError } from './errors.js';
import { GatewayRegistry } from './gateway-registry.js';
import { LeaderElection } from './leader-election.js';
import { buildMeshView } from './dashboard/mesh-view.js';
import { DashboardSessions } from './dashboard/sessions.js';
import type { MeshView } from './dashboard/view-types.js';
import { ControlPlaneMetrics } from './metrics.js';
import { OrphanSweeper } from './orphan-sweeper.js';
import { PolicyService } from './policies.js';
import { Registry } from './registry.js';
import { ReplicaLease } from './replica-lease.js';
import { SecretBox } from './secret-box.js';
import { SharedDataFiles } from './shared-data-files.js';
import { ReportStore } from './reports.js';
import { RevocationService } from './revocations.js';
import { SidecarChannel } from './sidecar-channel.js';
import { FileStore } from './store/file-store.js';
import type { Store } from './store/store.js';
import { startTokenPruner } from './token-pruner.js';
import type { TokenPruner } from './token-pruner.js';
import { ADMIN_TOKEN_FILE_NAME, TokenService } from './token-service.js';
import { ENDPOINT_KEY_PREFIX, GATEWAY_KEY_PREFIX } from '../proto/control.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * The listener's certificate lives this long and is replaced at a third of it, without a
 * restart. The renewal interval must stay below 2^31 ms (24.8 days), the most a timer can wait.
 */
const SERVER_CERT_TTL_MS = 60 * DAY_MS;
const SERVER_CERT_RENEW_MS = 20 * DAY_MS;
const TRUST_DOMAIN_PATTERN = /^[a-z0-9]([a-z0-9.-]{0,253}[a-z0-9])?$/;

/** Options of {@link startControlPlane}. */
export interface ControlPlaneInit {
  /** Holds the CA, the admin token and the state file; created (0700) if missing. */
  dataDir: string;
  listenHost: string;
  /** 0 picks any free port; {@link ControlPlane.url} has the real one. */
  listenPort: number;
  /** Used only when the data directory is new. @default 'trellis.local' */
  trustDomain?: string;
  /** Lifetime of sidecar certificates. @default 24 h */
  leafTtlMs?: number;
  /** How long an endpoint outlives its sidecar's session. @default 15 s */
  leaseTtlMs?: number;
  logger: Logger;
  /** Interval of the channel heartbeat. @default 10 s */
  pingIntervalMs?: number;
  /** Window over which config changes are coalesced into one delta. @default 20 ms */
  pushCoalesceMs?: number;
  /** Config bytes sent to a session and not acked, beyond which it counts as behind. @default 1 MiB */
  pushWindowBytes?: number;
  /**
   * Share state with the other replicas of one etcd. The CA and the admin token are stored
   * there encrypted with the key in `encryptionKeyFile` (mode 0600), the same file on every
   * replica. @default state in a file in `dataDir`
   */
  etcd?: { hosts: string[]; encryptionKeyFile: string; prefix?: string };
  /** Where state lives, if given (tests); closed by {@link ControlPlane.close}. Overrides `etcd`'s store, not its encryption. */
  store?: Store;
  /** Names this replica in logs and in the leader key. @default `<hostname>:<pid>` */
  replicaId?: string;
  /** How often sidecars and gateways send their reports. @default 5 s */
  reportIntervalMs?: number;
  /** Clock for token and certificate times, ms since the epoch (tests move it). @default Date.now */
  now?: () => number;
}

/** A running control plane. */
export interface ControlPlane {
  /** `https://host:port`, with the port actually bound. */
  url: string;
  adminTokenPath: string;
  /** Lowercase hex SHA-256 of the CA certificate's DER. */
  caFingerprint: string;
  /** The trust domain in force (that of the existing CA when the data directory was not new). */
  trustDomain: string;
  /** This control plane's own prom-client registry. */
  metricsRegistry: MetricsRegistry;
  /** Closes sessions and the listener, then the store. */
  close(): Promise<void>;
}

/**
 * Starts a control plane.
 * @throws DataDirError naming the unusable file or directory; ValidationError for bad options.
 */
export async function startControlPlane(init: ControlPlaneInit): Promise<ControlPlane> {
  const now = init.now ?? Date.now;
  const leafTtlMs = positive(init.leafTtlMs ?? DAY_MS, 'leafTtlMs');
  const leaseTtlMs = positive(init.leaseTtlMs ?? 15_000, 'leaseTtlMs');
  const requestedTrustDomain = init.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  if (!TRUST_DOMAIN_PATTERN.test(requestedTrustDomain)) throw new ValidationError(`trust domain "${requestedTrustDomain}" is not a DNS-like name`);
  const logger = init.logger;
  const replicaId = init.replicaId ?? `${hostname()}:${process.pid}`;
  await prepareDataDir(init.dataDir);
  // The port first: a busy port must not leave a new CA and admin token behind. The listener
  // has no certificate until the CA exists; it refuses handshakes for those few moments.
  const server = createServer({
    // Sidecars present certificates on the channel; REST clients use tokens and need none.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.2',
  });
  let port: number;
  try {
    port = await listen(server, init.listenHost, init.listenPort);
  } catch (err) {
    throw new TrellisError(ControlErrorCode.LISTEN, `cannot listen on ${init.listenHost}:${init.listenPort}: ${(err as Error).message}`, { cause: err });
  }
  const closeServer = (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    return closed;
  };
  let store: Store | undefined;
  try {
    const box = init.etcd === undefined ? undefined : await SecretBox.fromKeyFile(init.etcd.encryptionKeyFile);
    // The leases restored from the files wait until the channel serves (startRestoredLeases below).
    let fileStore: FileStore | undefined;
    if (init.store !== undefined) store = init.store;
    else if (init.etcd !== undefined) store = await connectEtcd(init.etcd);
    else store = fileStore = await FileStore.open(init.dataDir, { holdRestoredLeases: true });
    const { ca, tokens, adminTokenPath } = await loadSecrets({ store, box, dataDir: init.dataDir, trustDomain: requestedTrustDomain, replicaId, logger, now });
    const config = await ConfigState.load(store, logger);
    const replicaLease = await ReplicaLease.grant(store, leaseTtlMs, logger);
    const registry = new Registry(config, replicaLease, leaseTtlMs, logger);
    const gateways = new GatewayRegistry(config, replicaLease, leaseTtlMs, logger);
    const election = new LeaderElection({ store, replicaId, ttlMs: leaseTtlMs, logger });
    const sweeper = new OrphanSweeper({ store, config, prefixes: [ENDPOINT_KEY_PREFIX, GATEWAY_KEY_PREFIX], intervalMs: leaseTtlMs, logger });
    // Duties that run once among the replicas: the leader's.
    let tokenPruner: TokenPruner | undefined;
    election.onChange((leading) => {
      gateways.setLeading(leading);
      tokenPruner?.stop();
      tokenPruner = leading ? startTokenPruner(tokens, { logger }) : undefined;
      if (leading) sweeper.start();
      else sweeper.stop();
    });
    const metrics = new ControlPlaneMetrics();
    const publisher = new ConfigPublisher(config, metrics, { coalesceMs: init.pushCoalesceMs, windowBytes: init.pushWindowBytes });
    const policies = new PolicyService(config);
    const revocations = new RevocationService(config, now);
    const reports = new ReportStore(now);
    const reportIntervalMs = reportInterval(init.reportIntervalMs ?? 5000);
    const meshView = (): MeshView => buildMeshView({ registry, gateways, policies, reports, reportIntervalMs, leafTtlMs, now, ackedVersionOf: (key): number | undefined => channel.ackedVersionOf(key), sentVersionOf: (key): number | undefined => channel.sentVersionOf(key) });
    // The listener's certificate and trust follow every change of the CA's roots.
    const renewServerCert = async (): Promise<void> => {
      const next = await issueServerCertificate(ca, init.listenHost, SERVER_CERT_TTL_MS);
      server.setSecureContext({ key: next.keyPem, cert: next.certPem, ca: ca.caPems() });
    };
    // With replicas, the rotation waits for every replica's sessions, and only the leader steps it.
    const ackedVersions = (): Iterable<number> => channel.ackedVersions();
    const bundleAcks: BundleAcks =
      box === undefined
        ? new LocalBundleAcks(ackedVersions)
        : new SharedBundleAcks({ store, replicaId, lease: () => replicaLease.current, acked: ackedVersions, logger });
    const caRotation = new CaRotation({
      ca,
      config,
      acks: bundleAcks,
      ...(box === undefined ? {} : { isLeader: (): boolean => election.isLeader }),
      onCaChanged: renewServerCert,
      logger,
      now,
    });
    const routes = [
      ...publicRoutes({ ca, tokens, metrics, leafTtlMs, revocations }),
      ...adminRoutes({ tokens, policies, registry, gateways, revocations }),
      ...tokenRoutes({ tokens }),
      ...caRoutes(caRotation),
      ...meshViewRoutes(meshView),
    ];
    const serverCert = await issueServerCertificate(ca, init.listenHost, SERVER_CERT_TTL_MS);
    server.setSecureContext({ key: serverCert.keyPem, cert: serverCert.certPem, ca: ca.caPems() });
    server.on(
      'request',
      withDashboard(createRequestHandler(routes, { tokens, metrics, logger }), {
        tokens,
        sessions: new DashboardSessions({ now }),
        view: meshView,
        apiRoutes: routes,
        metrics,
        logger,
      }),
    );
    const channel = new SidecarChannel(server, { ca, registry, gateways, publisher, metrics, logger, leafTtlMs, revocations, reports: { store: reports, intervalMs: reportIntervalMs } }, init.pingIntervalMs);
    metrics.setGaugeSource({
      sidecarsConnected: () => channel.connectedCount,
      endpointCounts: () => registry.endpointCounts(),
      configVersion: () => config.version,
      ackedVersions: () => channel.ackedVersions(),
    });
    election.start();
    if (bundleAcks instanceof SharedBundleAcks) await bundleAcks.start();
    await caRotation.start();
    const renewTimer = setInterval(() => {
      renewServerCert().catch((err: unknown) => logger.error({ err }, 'cannot renew the control plane certificate'));
    }, SERVER_CERT_RENEW_MS);
    renewTimer.unref();
    // The endpoints and gateways of the previous run stay a lease time from now, not from the
    // store's opening, plus the longest back-off of their owners: a sidecar that lost its session
    // while the control plane was down retries up to MAX_RECONNECT_DELAY_MS apart, and removing
    // its entry before it can be back would have every caller refuse new connections to a live
    // endpoint (TRELLIS_ERR_NO_ENDPOINT; across zones, gateways and their routes).
    fileStore?.startRestoredLeases(MAX_RECONNECT_DELAY_MS);
    const host = isIP(init.listenHost) === 6 ? `[${init.listenHost}]` : init.listenHost;
    const url = `https://${host}:${port}`;
    logger.info({ url, replicaId, store: init.etcd === undefined ? 'file' : 'etcd', trustDomain: ca.trustDomain, caFingerprint: ca.fingerprint, configVersion: config.version }, 'control plane listening');
    const openStore = store;
    let closing: Promise<void> | undefined;
    return {
      url,
      adminTokenPath,
      caFingerprint: ca.fingerprint,
      trustDomain: ca.trustDomain,
      metricsRegistry: metrics.registry,
      close() {
        closing ??= (async () => {
          clearInterval(renewTimer);
          tokenPruner?.stop();
          caRotation.close();
          const serverClosed = closeServer();
          await channel.close();
          await serverClosed;
          await bundleAcks.close();
          publisher.close();
          registry.close();
          gateways.close();
          sweeper.stop();
          replicaLease.close();
          await election.close();
          await config.close();
          await ca.close();
          await openStore.close();
          logger.info('control plane closed');
        })();
        return closing;
      },
    };
  } catch (err) {
    await closeServer();
    await store?.close();
    throw err;
  }
}

/** The etcd store, loaded only when asked for: the file store's users need none of its client. */
async function connectEtcd(etcd: { hosts: string[]; prefix?: string }): Promise<Store> {
  const { EtcdStore } = await import('./store/etcd-store.js');
  return EtcdStore.connect({ hosts: etcd.hosts, prefix: etcd.prefix });
}

/**
 * The CA and the admin token. With a shared store, the CA lives in the store (its keys
 * sealed, see ca-store.ts) and every replica takes the admin token the first one stored
 * (encrypted); the first stores its own.
 */
async function loadSecrets(init: {
  store: Store;
  box: SecretBox | undefined;
  dataDir: string;
  trustDomain: string;
  replicaId: string;
  logger: Logger;
  now: () => number;
}): Promise<{ ca: CertificateAuthority; tokens: TokenService; adminTokenPath: string }> {
  const { store, box, dataDir, trustDomain, replicaId, logger, now } = init;
  const shared =
    box === undefined ? undefined : new SharedDataFiles({ store, box, dataDir, logger, files: [{ name: ADMIN_TOKEN_FILE_NAME, mode: 0o600 }] });
  const ca =
    box === undefined
      ? await CertificateAuthority.loadOrCreate({ dataDir, trustDomain, logger, now })
      : await CertificateAuthority.open({ persistence: new StoreCaPersistence({ store, box, writerId: replicaId, dataDir, logger, now }), trustDomain, logger, now });
  const tokens = new TokenService(store, ca, now);
  for (let attempt = 0; ; attempt++) {
    const complete = (await shared?.pull()) ?? true;
    const adminTokenPath = await tokens.ensureAdminToken(dataDir, logger);
    // Another replica that started at the same moment may have stored its own first: take that.
    if (complete || shared === undefined || (await shared.push()) || attempt > 0) return { ca, tokens, adminTokenPath };
  }
}

async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    if (!(await stat(dataDir)).isDirectory()) throw new Error('not a directory');
    await access(dataDir, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new DataDirError(dataDir, `data directory is unusable: ${(err as Error).message}`, { cause: err });
  }
}

function listen(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw new ValidationError(`${name} must be a positive number of milliseconds`);
  return value;
}

function reportInterval(ms: number): number {
  if (!Number.isInteger(ms) || ms < MIN_REPORT_INTERVAL_MS || ms > MAX_REPORT_INTERVAL_MS) {
    throw new ValidationError(`reportIntervalMs must be a whole number of milliseconds from ${MIN_REPORT_INTERVAL_MS} to ${MAX_REPORT_INTERVAL_MS}`);
  }
  return ms;
}
