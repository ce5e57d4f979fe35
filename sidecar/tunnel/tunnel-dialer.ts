import type { Logger } from 'pino';
import { ErrorCode } from '../../proto/errors.js';
import { gatewayKey } from '../../proto/names.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { MeshConfig } from '../config/mesh-config.js';
import { NoRouteError } from '../forward/no-route.js';
import type { LinkManager } from '../links/link-manager.js';
import type { LinkTls } from '../links/link-tls.js';
import type { AuthenticatedLink, LinkTarget } from '../links/transport.js';
import { MuxStreamDuplex } from '../mux/index.js';
import type { Session } from '../mux/index.js';
import type { PathSelector } from './path-selector.js';
import { watchCarrierDrain } from './carrier-drain.js';

export interface TunnelDialerInit {
  /** This sidecar's zone and id. */
  zone: string;
  sidecarId: string;
  config: MeshConfig;
  /** Links to this zone's gateways (dialled on first use, reused by every tunnel). */
  gatewayLinks: LinkManager;
  /** The end-to-end TLS run inside each tunnel. */
  tls: LinkTls;
  paths: PathSelector;
  logger: Logger;
  /** Paths tried for one tunnel before giving up. @default 4 */
  maxPathAttempts?: number;
}

/**
 * Dials a link to a sidecar of another zone as a tunnel through gateways: picks a published
 * path, opens a TUNNEL stream on the link to its first gateway, and runs mutual TLS with the
 * destination sidecar itself inside it. The result is an ordinary link (the caller runs a
 * session over it), so every stream to that sidecar shares the one tunnel.
 */
export class TunnelDialer {
  readonly #init: TunnelDialerInit;
  /** The address that last worked for each gateway, tried first next time. */
  readonly #goodAddress = new Map<string, string>();

  constructor(init: TunnelDialerInit) {
    this.#init = init;
  }

  /** Whether `target` is reached through gateways rather than directly. */
  isRemote(target: LinkTarget): boolean {
    return target.endpoint !== undefined && target.endpoint.zone !== this.#init.zone;
  }

  async dial(target: LinkTarget): Promise<AuthenticatedLink> {
    const { config, paths, logger } = this.#init;
    const endpoint = target.endpoint;
    if (endpoint === undefined) throw new NoRouteError('TRELLIS_ERR_NO_ROUTE', 'a tunnel needs the endpoint\'s sidecar id and zone', ErrorCode.NO_ROUTE);
    const route = config.route(this.#init.zone, endpoint.zone);
    if (route === undefined || route.paths.length === 0) {
      throw new NoRouteError('TRELLIS_ERR_NO_ROUTE', `no gateway path from zone "${this.#init.zone}" to zone "${endpoint.zone}"`, ErrorCode.NO_ROUTE);
    }
    const ordered = paths.order(route.paths, `${this.#init.sidecarId}>${endpoint.sidecarId}`).slice(0, this.#init.maxPathAttempts ?? 4);
    let lastError: unknown;
    for (const path of ordered) {
      const first = path[0] as string;
      try {
        const session = await this.#gatewaySession(first);
        await session.whenReady();
        const stream = session.openTunnel(path, 0, endpoint.sidecarId);
        const onCarrierDrain = watchCarrierDrain(stream);
        // Later tunnels avoid a draining gateway, wherever it is on the path.
        onCarrierDrain((gateway) => paths.draining(gateway));
        const describe = `${endpoint.sidecarId} via ${path.join(' > ')}`;
        const link = await this.#init.tls.client(new MuxStreamDuplex(stream), target.peer, describe);
        paths.succeeded(first);
        logger.info({ target: endpoint.sidecarId, zone: endpoint.zone, path }, 'tunnel up');
        return { ...link, onCarrierDrain };
      } catch (error) {
        lastError = error;
        paths.failed(first);
        logger.warn({ target: endpoint.sidecarId, path, err: (error as Error).message, code: (error as { code?: string }).code }, 'tunnel path failed; trying the next');
      }
    }
    const why = lastError instanceof Error ? lastError.message : 'no path could be tried';
    throw new NoRouteError('TRELLIS_ERR_NO_ROUTE', `no gateway path to ${endpoint.sidecarId} in zone "${endpoint.zone}" works: ${why}`, ErrorCode.NO_ROUTE, { cause: lastError });
  }

  /** The link to gateway `key` of this zone, trying its advertised addresses in order. */
  async #gatewaySession(key: string): Promise<Session> {
    const [zone, name] = key.split('/') as [string, string];
    const gateway = this.#init.config.gateway(zone, name);
    if (gateway === undefined || gateway.addresses.length === 0) {
      throw new NoRouteError('TRELLIS_ERR_NO_ROUTE', `gateway ${key} is not registered or advertises no address`, ErrorCode.NO_ROUTE);
    }
    const peer: PeerIdentity = { kind: 'gateway', zone, name };
    const preferred = this.#goodAddress.get(key);
    const addresses = preferred !== undefined && gateway.addresses.includes(preferred) ? [preferred, ...gateway.addresses.filter((a) => a !== preferred)] : gateway.addresses;
    let lastError: unknown;
    for (const address of addresses) {
      try {
        const session = await this.#init.gatewayLinks.sessionFor({ address, peer });
        this.#goodAddress.set(key, address);
        return session;
      } catch (error) {
        lastError = error;
      }
    }
    throw lastError instanceof Error ? lastError : new Error(`gateway ${gatewayKey(zone, name)} unreachable`);
  }
}
