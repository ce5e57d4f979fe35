import type { Logger } from 'pino';
import { ErrorCode } from '../../proto/errors.js';
import type { TunnelFrame } from '../../proto/frames.js';
import { gatewayKey, zoneOfGatewayKey } from '../../proto/names.js';
import { isPublishedPath } from '../../proto/routes.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { MeshConfig } from '../config/mesh-config.js';
import type { LinkManager } from '../links/link-manager.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { ActiveSet } from '../forward/active-set.js';
import type { MuxStream, Session } from '../mux/index.js';
import { holdBytes, spliceStreams } from '../tunnel/splice.js';

export interface RelayInit {
  /** This gateway's key, `<zone>/<name>`. */
  self: string;
  config: MeshConfig;
  /** The live link to a gateway of another zone, whichever end dialled it. */
  peerSession(key: string): Session | undefined;
  /** Links to the sidecars of this gateway's zone (the last hop of a tunnel). */
  sidecarLinks: LinkManager;
  metrics: SidecarMetrics;
  logger: Logger;
}

/**
 * What a gateway does with a tunnel stream: checks it against the published routes and the
 * identity of the link it came on, opens the next segment, and splices the two. It reads no
 * byte of what the tunnel carries (the end sidecars' own TLS).
 */
export class Relay {
  readonly #init: RelayInit;
  /** The tunnels spliced here now: both segments of each. */
  readonly #spliced = new ActiveSet<readonly [MuxStream, MuxStream]>();
  #draining = false;

  constructor(init: RelayInit) {
    this.#init = init;
  }

  /** A TUNNEL from `from` (a sidecar of this zone, or a gateway of another); `fromId` is its certificate's id. */
  onTunnel(inbound: MuxStream, tunnel: TunnelFrame, from: PeerIdentity, fromId?: string): void {
    const refusal = this.#check(tunnel, from, fromId);
    if (refusal !== undefined) return this.#refuse(inbound, ErrorCode.ROUTE_REFUSED, refusal.reason, refusal.message);
    const held = holdBytes(inbound);
    this.#openNext(tunnel).then(
      (outbound) => {
        if (inbound.state === 'closed') {
          outbound.reset(ErrorCode.STREAM_ABORTED, 'the previous hop went away');
          return;
        }
        const { metrics } = this.#init;
        metrics.tunnelOpened('relay');
        const segments = [inbound, outbound] as const;
        this.#spliced.add(segments);
        // A tunnel is done here once both segments are: a FIN may still be on its way out on one.
        let open = 2;
        const segmentClosed = (): void => {
          if (--open > 0) return;
          metrics.tunnelClosed('relay');
          this.#spliced.delete(segments);
        };
        inbound.once('close', segmentClosed);
        outbound.once('close', segmentClosed);
        spliceStreams(inbound, outbound, held);
        // Opened while the drain began: it moves too.
        if (this.#draining) this.#tellEnds(segments);
      },
      (error: Error) => this.#refuse(inbound, ErrorCode.NO_ROUTE, 'next-hop-unreachable', error.message),
    );
  }

  /** Tunnels spliced here now. */
  get activeTunnels(): number {
    return this.#spliced.size;
  }

  /**
   * Starts the drain: both ends of every tunnel spliced here (and of any spliced from now on)
   * get TUNNEL_DRAIN, and move their end-to-end links to tunnels that do not cross this gateway.
   */
  drain(): void {
    this.#draining = true;
    for (const segments of this.#spliced) this.#tellEnds(segments);
  }

  /** Resolves once no tunnel is spliced here (at once if none is). */
  whenIdle(): Promise<void> {
    return this.#spliced.whenEmpty();
  }

  #tellEnds(segments: readonly [MuxStream, MuxStream]): void {
    for (const segment of segments) segment.sendTunnelDrain(this.#init.self);
  }

  /** Why a tunnel may not pass here, or undefined when it may. */
  #check(tunnel: TunnelFrame, from: PeerIdentity, fromId: string | undefined): { reason: string; message: string } | undefined {
    const { self, config } = this.#init;
    const { path, hop } = tunnel;
    if (hop >= path.length || path[hop] !== self) return { reason: 'wrong-hop', message: `hop ${hop} of ${path.join(' > ')} is not ${self}` };
    // A revoked caller's links are closed and refused (a revoked service's too, by the
    // certificate's notBefore, at admission); no tunnel may pass in between, nor reach a
    // revoked target whose endpoint is still on its way out.
    if (fromId !== undefined && config.sidecar(fromId) !== undefined) return { reason: 'revoked', message: `${fromId} is revoked` };
    if (config.sidecar(tunnel.target) !== undefined) return { reason: 'revoked', message: `${tunnel.target} is revoked` };
    if (hop === 0 ? from.kind !== 'service' : from.kind !== 'gateway' || gatewayKey(from.zone, from.name) !== path[hop - 1]) {
      return { reason: 'wrong-previous-hop', message: `hop ${hop} must come from ${hop === 0 ? 'a sidecar' : path[hop - 1]}` };
    }
    // The first hop serves its own zone's sidecars: one registered elsewhere may not borrow it.
    // (A sidecar whose registration has not reached this gateway yet is let through.)
    const callerZone = hop === 0 && fromId !== undefined ? config.endpointOf(fromId)?.zone : undefined;
    if (callerZone !== undefined && callerZone !== zoneOfGatewayKey(self)) {
      return { reason: 'wrong-zone', message: `${fromId ?? ''} is a sidecar of zone ${callerZone}, not of ${zoneOfGatewayKey(self)}` };
    }
    if (!isPublishedPath((a, b) => config.route(a, b), path)) return { reason: 'not-published', message: `${path.join(' > ')} is not a published route` };
    const endpoint = config.endpointOf(tunnel.target);
    const lastZone = zoneOfGatewayKey(path[path.length - 1] as string);
    if (endpoint === undefined || endpoint.zone !== lastZone) return { reason: 'unknown-target', message: `${tunnel.target} is no endpoint of zone ${lastZone}` };
    return undefined;
  }

  async #openNext(tunnel: TunnelFrame): Promise<MuxStream> {
    const { path, hop, target } = tunnel;
    if (hop < path.length - 1) {
      const next = path[hop + 1] as string;
      const session = this.#init.peerSession(next);
      if (session === undefined) throw new Error(`no link to gateway ${next}`);
      await session.whenReady();
      return session.openTunnel(path, hop + 1, target);
    }
    const endpoint = this.#init.config.endpointOf(target);
    if (endpoint === undefined) throw new Error(`sidecar ${target} is not registered`);
    const session = await this.#init.sidecarLinks.sessionFor({ address: endpoint.address, peer: { kind: 'service', service: endpoint.service } });
    await session.whenReady();
    return session.openTunnel(path, path.length, target);
  }

  #refuse(stream: MuxStream, code: ErrorCode, reason: string, message: string): void {
    this.#init.metrics.tunnelRefused(reason);
    this.#init.logger.warn({ reason, err: message }, 'tunnel refused');
    if (stream.state !== 'closed') stream.reset(code, message);
  }
}
