import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { ErrorCode, TrellisError } from '../../proto/errors.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import type { MuxStream } from '../mux/index.js';
import { Session } from '../mux/index.js';
import type { LinkTarget, LinkTransport } from './transport.js';

export interface LinkManagerInit {
  transport: LinkTransport;
  metrics: SidecarMetrics;
  logger: Logger;
  /** Passed to every session: credit per stream, per direction. */
  initialWindowBytes?: number;
}

/**
 * Keeps one long-lived outbound link per peer sidecar, dialled on first use and reused by
 * every later stream. Concurrent first uses share one dial.
 */
export class LinkManager {
  readonly #init: LinkManagerInit;
  readonly #sessions = new Map<string, Session>();
  readonly #dialing = new Map<string, Promise<Session>>();
  #closed = false;

  constructor(init: LinkManagerInit) {
    this.#init = init;
  }

  /** Opens a stream to `service` on the link to `target`, dialling the link if needed. */
  async openStream(target: LinkTarget, service: string): Promise<MuxStream> {
    const session = await this.#sessionFor(target);
    return session.openStream(service);
  }

  /** Number of outbound links open now. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Sends GOAWAY on every link; they close once their streams are done. */
  drain(): void {
    this.#closed = true;
    for (const session of this.#sessions.values()) session.goAway();
  }

  close(): void {
    this.#closed = true;
    for (const session of this.#sessions.values()) session.close();
    this.#sessions.clear();
  }

  #sessionFor(target: LinkTarget): Promise<Session> {
    if (this.#closed) return Promise.reject(new TrellisError('TRELLIS_ERR_GOING_AWAY', 'sidecar is shutting down'));
    const key = `${target.service}@${target.address}`;
    const existing = this.#sessions.get(key);
    if (existing !== undefined) return Promise.resolve(existing);
    let dialing = this.#dialing.get(key);
    if (dialing === undefined) {
      dialing = this.#dial(key, target).finally(() => this.#dialing.delete(key));
      this.#dialing.set(key, dialing);
    }
    return dialing;
  }

  async #dial(key: string, target: LinkTarget): Promise<Session> {
    const { transport, metrics, logger } = this.#init;
    const started = performance.now();
    let link;
    try {
      link = await transport.dial(target);
    } catch (error) {
      metrics.linkDialed((performance.now() - started) / 1000, false);
      throw error;
    }
    metrics.linkDialed((performance.now() - started) / 1000, true);
    const session = new Session(link.socket, {
      role: 'dialer',
      initialWindowBytes: this.#init.initialWindowBytes,
      // Peers do not open streams on links we dialled; refuse politely if one tries.
      onStream: (stream) => stream.reset(ErrorCode.PROTOCOL_ERROR, 'streams are opened by the dialling side only'),
    });
    this.#sessions.set(key, session);
    metrics.linksActive(this.#sessions.size);
    session.on('close', (error?: TrellisError) => {
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
      metrics.linksActive(this.#sessions.size);
      if (error !== undefined) {
        if (error.name === 'ProtocolError') metrics.protocolViolation(error.code);
        logger.warn({ peer: target.address, code: error.code, err: error.message }, 'link closed with an error');
      } else {
        logger.debug({ peer: target.address }, 'link closed');
      }
    });
    session.on('goaway', () => {
      // The peer is draining: new streams must go to a new link (or another endpoint).
      if (this.#sessions.get(key) === session) this.#sessions.delete(key);
    });
    logger.info({ peer: target.address, service: target.service }, 'link up');
    return session;
  }
}
