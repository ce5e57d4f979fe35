import type { Logger } from 'pino';
import { ErrorCode } from '../../proto/errors.js';
import type { TunnelFrame } from '../../proto/frames.js';
import { gatewayKey } from '../../proto/names.js';
import type { PeerIdentity } from '../../proto/spiffe.js';
import type { LinkTls } from '../links/link-tls.js';
import type { AuthenticatedLink } from '../links/transport.js';
import type { MuxStream } from '../mux/index.js';
import { MuxStreamDuplex } from '../mux/index.js';
import { watchCarrierDrain } from './carrier-drain.js';

export interface TunnelAcceptorInit {
  /** This sidecar's id: the only target it accepts. */
  sidecarId: string;
  tls: LinkTls;
  /** Takes the link that runs inside an accepted tunnel (its peer is the source sidecar). */
  accept(link: AuthenticatedLink): void;
  /** A tunnel refused here, by reason. */
  onRefused(reason: string): void;
  logger: Logger;
}

/**
 * The destination end of a tunnel: checks that the tunnel is for this sidecar and arrives from
 * the last gateway of its path, then runs the TLS server side inside it with this sidecar's own
 * certificate. The source sidecar's certificate, proved end to end, becomes the link's peer
 * identity: policy sees the caller, never a gateway.
 */
export class TunnelAcceptor {
  readonly #init: TunnelAcceptorInit;

  constructor(init: TunnelAcceptorInit) {
    this.#init = init;
  }

  onTunnel(stream: MuxStream, tunnel: TunnelFrame, from: PeerIdentity): void {
    const last = tunnel.path[tunnel.path.length - 1];
    if (tunnel.hop !== tunnel.path.length || tunnel.target !== this.#init.sidecarId) {
      return this.#refuse(stream, 'wrong-target', `this sidecar is ${this.#init.sidecarId}, not the tunnel's end`);
    }
    if (from.kind !== 'gateway' || gatewayKey(from.zone, from.name) !== last) {
      return this.#refuse(stream, 'wrong-previous-hop', `the tunnel must arrive from gateway ${last}`);
    }
    const onCarrierDrain = watchCarrierDrain(stream);
    const duplex = new MuxStreamDuplex(stream);
    const describe = `tunnel via ${tunnel.path.join(' > ')}`;
    this.#init.tls.server(duplex, describe).then(
      (link) => {
        if (link.peer.kind !== 'service') {
          link.socket.destroy();
          this.#init.onRefused('not-a-sidecar');
          return;
        }
        this.#init.accept({ ...link, onCarrierDrain });
      },
      (error: Error & { code?: string }) => {
        duplex.destroy();
        this.#init.onRefused('handshake');
        this.#init.logger.warn({ path: tunnel.path, code: error.code, err: error.message }, 'tunnel handshake failed');
      },
    );
  }

  #refuse(stream: MuxStream, reason: string, message: string): void {
    this.#init.onRefused(reason);
    this.#init.logger.warn({ reason }, `tunnel refused: ${message}`);
    stream.reset(ErrorCode.ROUTE_REFUSED, message);
  }
}
