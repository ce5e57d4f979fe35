import type { Logger } from 'pino';
import { TrellisError } from '../../proto/errors.js';
import { MeshConfig } from '../config/mesh-config.js';
import type { DataPlane } from '../data-plane.js';
import { startDataPlane } from '../data-plane.js';
import { Credentials } from '../identity/credentials.js';
import type { Connector } from '../links/connector.js';
import { PrometheusSidecarMetrics } from '../metrics/index.js';
import type { PrimaryMessage, WorkerMessage } from './messages.js';
import { RemoteSubscriptions } from './remote-subscriptions.js';

type StartMessage = Extract<PrimaryMessage, { type: 'start' }>;

export interface ForwardingWorkerInit {
  /** The channel to the primary (`process.send` in a cluster worker). */
  send(message: WorkerMessage): void;
  logger: Logger;
  egress?: Connector;
}

/**
 * One forwarding worker of a sidecar: the data plane, run with copies of the primary's
 * credentials and mesh configuration, replaced whenever the primary sends newer ones. The
 * listeners are shared with the other workers (the kernel picks who accepts).
 */
export class ForwardingWorker {
  readonly #init: ForwardingWorkerInit;
  readonly #credentials: Credentials;
  readonly #config: MeshConfig;
  readonly #subscriptions: RemoteSubscriptions;
  readonly #metrics: PrometheusSidecarMetrics;
  readonly #dataPlane: DataPlane;

  private constructor(init: ForwardingWorkerInit, parts: { credentials: Credentials; config: MeshConfig; subscriptions: RemoteSubscriptions; metrics: PrometheusSidecarMetrics; dataPlane: DataPlane }) {
    this.#init = init;
    this.#credentials = parts.credentials;
    this.#config = parts.config;
    this.#subscriptions = parts.subscriptions;
    this.#metrics = parts.metrics;
    this.#dataPlane = parts.dataPlane;
  }

  /** Starts the data plane from the primary's `start` message and tells the primary it is ready (or why not). */
  static async start(message: StartMessage, init: ForwardingWorkerInit): Promise<ForwardingWorker> {
    const credentials = new Credentials(message.credentials);
    const config = new MeshConfig();
    const subscriptions = new RemoteSubscriptions((service) => init.send({ type: 'want', service }));
    subscriptions.update(message.config.held);
    config.applySnapshot(message.config.version, message.config.entries);
    const metrics = new PrometheusSidecarMetrics({ service: message.settings.service });
    let dataPlane: DataPlane;
    try {
      dataPlane = await startDataPlane(message.settings, { credentials, config, subscriptions, metrics, logger: init.logger, egress: init.egress });
    } catch (error) {
      const code = error instanceof TrellisError ? error.code : ((error as NodeJS.ErrnoException).code ?? 'TRELLIS_ERR_INTERNAL');
      init.send({ type: 'failed', code, message: (error as Error).message });
      throw error;
    }
    init.send({ type: 'ready', linkUrl: dataPlane.linkUrl, upstreams: dataPlane.upstreams.map((u) => ({ service: u.service, address: u.address })), proxyAddress: dataPlane.proxyAddress });
    return new ForwardingWorker(init, { credentials, config, subscriptions, metrics, dataPlane });
  }

  /** Applies one message of the primary. Resolves when a `close` is done. */
  async handle(message: PrimaryMessage): Promise<void> {
    switch (message.type) {
      case 'credentials':
        {
          const { privateKeyPem, certPem, caPems, expiresAt } = message.credentials;
          this.#credentials.replace({ privateKeyPem, certPem, caPems, expiresAt });
        }
        break;
      case 'config':
        // Held first: the endpoints that the new version brings are then taken as complete.
        this.#subscriptions.update(message.held);
        this.#config.applySnapshot(message.version, message.entries);
        break;
      case 'collect':
        this.#init.send({ type: 'collected', id: message.id, metrics: await this.#metrics.registry.getMetricsAsJSON(), status: await this.#dataPlane.status() });
        break;
      case 'drain':
        this.#init.send({ type: 'drained', complete: await this.#dataPlane.drain(message.deadline) });
        break;
      case 'close':
        await this.close();
        break;
      case 'start':
        this.#init.logger.warn('a second start message was ignored');
        break;
    }
  }

  close(): Promise<void> {
    return this.#dataPlane.close();
  }
}
