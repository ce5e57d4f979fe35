/**
 * The control plane's wiring, in one place: data directory, store, CA, tokens, config, the
 * registries of endpoints and gateways, the HTTPS listener with its REST routes and the
 * sidecar channel, and metrics.
 */
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { createServer } from 'node:https';
import type { Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Registry as MetricsRegistry } from 'prom-client';
import { ControlErrorCode, DEFAULT_TRUST_DOMAIN } from '../proto/control.js';
import { TrellisError, ValidationError } from '../proto/errors.js';
import { adminRoutes } from './api/admin-routes.js';
import { publicRoutes } from './api/public-routes.js';
import { createRequestHandler } from './api/router.js';
import { CertificateAuthority } from './ca.js';
import { issueServerCertificate } from './cert-issuer.js';
import { ConfigPublisher } from './config-publisher.js';
import { ConfigState } from './config-state.js';
import { DataDirError } from './errors.js';
import { GatewayRegistry } from './gateway-registry.js';
import { ControlPlaneMetrics } from './metrics.js';
import { PolicyService } from './policies.js';
import { Registry } from './registry.js';
import { SidecarChannel } from './sidecar-channel.js';
import { FileStore } from './store/file-store.js';
import type { Store } from './store/store.js';
import { TokenService } from './token-service.js';

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
  /** Where state lives. @default a FileStore in `dataDir`; closed by {@link ControlPlane.close}. */
  store?: Store;
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
  await prepareDataDir(init.dataDir);
  const store = init.store ?? (await FileStore.open(init.dataDir));
  try {
    const ca = await CertificateAuthority.loadOrCreate({ dataDir: init.dataDir, trustDomain: requestedTrustDomain, logger, now });
    const tokens = new TokenService(store, ca, now);
    const adminTokenPath = await tokens.ensureAdminToken(init.dataDir, logger);
    const config = await ConfigState.load(store, logger);
    const registry = new Registry(config, leaseTtlMs, logger);
    const gateways = new GatewayRegistry(config, leaseTtlMs, logger);
    const metrics = new ControlPlaneMetrics();
    const publisher = new ConfigPublisher(config, metrics, { coalesceMs: init.pushCoalesceMs, windowBytes: init.pushWindowBytes });
    const policies = new PolicyService(config);
    const routes = [...publicRoutes({ ca, tokens, metrics, leafTtlMs }), ...adminRoutes({ tokens, policies, registry, gateways })];
    const serverCert = await issueServerCertificate(ca, init.listenHost, SERVER_CERT_TTL_MS);
    const server = createServer(
      {
        key: serverCert.keyPem,
        cert: serverCert.certPem,
        ca: ca.caPems(),
        // Sidecars present certificates on the channel; REST clients use tokens and need none.
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      createRequestHandler(routes, { tokens, metrics, logger }),
    );
    const channel = new SidecarChannel(server, { ca, registry, gateways, publisher, metrics, logger, leafTtlMs }, init.pingIntervalMs);
    metrics.setGaugeSource({
      sidecarsConnected: () => channel.connectedCount,
      endpointCounts: () => registry.endpointCounts(),
      configVersion: () => config.version,
      ackedVersions: () => channel.ackedVersions(),
    });
    let port: number;
    try {
      port = await listen(server, init.listenHost, init.listenPort);
    } catch (err) {
      await channel.close();
      publisher.close();
      registry.close();
      gateways.close();
      throw new TrellisError(ControlErrorCode.LISTEN, `cannot listen on ${init.listenHost}:${init.listenPort}: ${(err as Error).message}`, { cause: err });
    }
    // Stored endpoints' and gateways' leases start once they can reach us again, not while we boot.
    registry.start();
    gateways.start();
    const renewTimer = setInterval(() => {
      issueServerCertificate(ca, init.listenHost, SERVER_CERT_TTL_MS)
        .then((next) => server.setSecureContext({ key: next.keyPem, cert: next.certPem, ca: ca.caPems() }))
        .catch((err: unknown) => logger.error({ err }, 'cannot renew the control plane certificate'));
    }, SERVER_CERT_RENEW_MS);
    renewTimer.unref();
    const host = isIP(init.listenHost) === 6 ? `[${init.listenHost}]` : init.listenHost;
    const url = `https://${host}:${port}`;
    logger.info({ url, trustDomain: ca.trustDomain, caFingerprint: ca.fingerprint, configVersion: config.version }, 'control plane listening');
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
          const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
          server.closeAllConnections();
          await channel.close();
          await serverClosed;
          publisher.close();
          registry.close();
          gateways.close();
          await store.close();
          logger.info('control plane closed');
        })();
        return closing;
      },
    };
  } catch (err) {
    await store.close();
    throw err;
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
