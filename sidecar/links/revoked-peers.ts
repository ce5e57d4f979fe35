import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { RevocationLookup } from '../../proto/revocation.js';
import { revocationOf } from '../../proto/revocation.js';
import { TrellisError } from '../../proto/errors.js';
import type { AuthenticatedLink, LinkTransport } from './transport.js';

/** The revocation entries of the mesh config, and the event that says they changed. */
export interface RevocationSource extends RevocationLookup {
  on(event: 'revocations', listener: () => void): unknown;
}

export interface RevokedPeersInit {
  revocations: RevocationSource;
  /** A link refused because its peer is revoked (the `revoked` reason of `trellis_link_refusals_total`). */
  onRefused(): void;
  logger: Logger;
}

/** What a link's certificate showed. */
type LinkHolder = Pick<AuthenticatedLink, 'peer' | 'peerId' | 'peerNotBeforeMs' | 'peerAddress'>;

/**
 * Keeps revoked peers off this process's links (PROTOCOL.md, "Revocation"): a link whose peer
 * is revoked is refused right after its handshake, and every live link is closed as soon as a
 * revocation that covers its peer arrives, whichever end dialled it and whatever carries it
 * (TLS, WebSocket, a tunnel). Emits 'change' after each change of the revocation entries, so
 * that transports forget TLS session tickets proved before it.
 */
export class RevokedPeers extends EventEmitter {
  readonly #init: RevokedPeersInit;
  /** Live links, each with what closes it. */
  readonly #live = new Map<LinkHolder, () => void>();

  constructor(init: RevokedPeersInit) {
    super();
    this.#init = init;
    init.revocations.on('revocations', () => this.#closeRevoked());
  }

  /** Why the peer of `link` is revoked, or undefined when it is not. */
  refusalFor(link: Pick<LinkHolder, 'peer' | 'peerId' | 'peerNotBeforeMs'>): string | undefined {
    const service = link.peer.kind === 'service' ? link.peer.service : undefined;
    return revocationOf(this.#init.revocations, { id: link.peerId, service, notBeforeMs: link.peerNotBeforeMs });
  }

  /** Whether sidecar (or gateway) `id` is revoked: such an endpoint is not dialled at all. */
  isRevokedId(id: string): boolean {
    return this.#init.revocations.sidecar(id) !== undefined;
  }

  /**
   * Admits a newly authenticated link: a revoked peer's is counted, logged and destroyed
   * (false); any other is watched until it closes, and closed by `close` once revoked.
   */
  admit(link: AuthenticatedLink, close: () => void = () => void link.socket.destroy()): boolean {
    const refusal = this.refusalFor(link);
    if (refusal !== undefined) {
      this.#init.onRefused();
      this.#init.logger.warn({ peer: link.peerAddress, peerId: link.peerId, reason: refusal }, 'refused a link from a revoked peer');
      link.socket.destroy();
      return false;
    }
    this.#live.set(link, close);
    link.socket.once('close', () => this.#live.delete(link));
    return true;
  }

  /** Live links watched now. */
  get size(): number {
    return this.#live.size;
  }

  #closeRevoked(): void {
    for (const [link, close] of [...this.#live]) {
      const refusal = this.refusalFor(link);
      if (refusal === undefined) continue;
      this.#live.delete(link);
      this.#init.logger.warn({ peer: link.peerAddress, peerId: link.peerId, reason: refusal }, 'closing a link to a revoked peer');
      close();
    }
    this.emit('change');
  }
}

/**
 * `transport` with every link it dials or accepts admitted by `revokedPeers` first: for owners
 * of links that hold no {@link RevokedPeers} themselves (a gateway's links to other gateways).
 */
export function withRevocationChecks(transport: LinkTransport, revokedPeers: RevokedPeers): LinkTransport {
  return {
    dial: async (target) => {
      const link = await transport.dial(target);
      if (!revokedPeers.admit(link)) throw new TrellisError('TRELLIS_ERR_PEER_REVOKED', `${target.address} shows a revoked certificate`);
      return link;
    },
    listen: (url, onLink) =>
      transport.listen(url, (link) => {
        if (revokedPeers.admit(link)) onLink(link);
      }),
  };
}
