import type { TunnelDialer } from '../tunnel/tunnel-dialer.js';
import type { LinkDialer } from './link-manager.js';
import type { AuthenticatedLink, LinkTarget } from './transport.js';

/**
 * Chooses how a link is made: to a sidecar of this zone (or a gateway) directly, over the
 * transport its advertised URL names; to a sidecar of another zone, as a tunnel through
 * gateways.
 */
export class MeshDialer implements LinkDialer {
  readonly #direct: LinkDialer;
  readonly #tunnels: TunnelDialer;

  constructor(direct: LinkDialer, tunnels: TunnelDialer) {
    this.#direct = direct;
    this.#tunnels = tunnels;
  }

  dial(target: LinkTarget): Promise<AuthenticatedLink> {
    return this.#tunnels.isRemote(target) ? this.#tunnels.dial(target) : this.#direct.dial(target);
  }
}
