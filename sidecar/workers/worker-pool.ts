import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ConfigSubscriptions } from '../config/subscriptions.js';
import type { MeshConfig } from '../config/mesh-config.js';
import type { BoundUpstream, DataPlaneSettings, DataPlaneStatus, ForwardingPlane } from '../data-plane.js';
import type { Credentials } from '../identity/credentials.js';
import type { MetricsSource } from '../control/reporter.js';
import { WorkerError } from './errors.js';
import { mergeMetrics, mergeStatus } from './merge.js';
import type { ConfigCopy, PrimaryMessage, WorkerMessage, WorkerSummary } from './messages.js';
import { isWorkerMessage } from './messages.js';

/** A worker that does not answer a collect in this time is left out of `/metrics` and `/status` (ms). */
const COLLECT_TIMEOUT_MS = 2000;
/** A worker that does not exit this long after `close` is killed (ms). */
const CLOSE_TIMEOUT_MS = 5000;
/** Back-off of replacing a worker that died young: doubles from here, up to the maximum (ms). */
const RESPAWN_BASE_DELAY_MS = 100;
const RESPAWN_MAX_DELAY_MS = 30_000;
/** A worker that served this long before it died is replaced at once (ms). */
const STABLE_WORKER_MS = 10_000;

export interface WorkerPoolInit {
  /** Workers to keep running (2 or more). */
  count: number;
  /** The script a worker process runs (it hands the `start` message to a `ForwardingWorker`). */
  entry: string;
  /** Passed to the entry script with `start`, for what it wires itself (logger, egress). Structured-cloneable. */
  entryOptions: unknown;
  settings: DataPlaneSettings;
  credentials: Credentials;
  config: MeshConfig;
  subscriptions: ConfigSubscriptions;
  /** The primary's own metrics, merged with the workers'. */
  registry: Registry;
  logger: Logger;
}

interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  ready: boolean;
  startedAt: number;
  youngDeaths: number;
  /** Set once the pool has started: from then on a worker that dies is replaced. */
  replaceOnExit: boolean;
}

type Ready = Extract<WorkerMessage, { type: 'ready' }>;

/**
 * The forwarding workers of one sidecar, forked with Node's cluster: each runs a data plane on
 * listeners shared through the kernel (SCHED_NONE: whichever worker accepts first serves), with
 * the credentials and config that the primary holds, sent again whenever they change. A worker
 * that dies is replaced; the streams it carried end with it, the others' go on.
 */
export class WorkerPool implements ForwardingPlane {
  readonly #init: WorkerPoolInit;
  readonly #slots: Slot[] = [];
  readonly #pending = new Map<number, (summary: WorkerSummary | undefined) => void>();
  #nextRequestId = 1;
  #closing = false;
  #configScheduled = false;
  #bound: Ready | undefined;

  private constructor(init: WorkerPoolInit) {
    this.#init = init;
  }

  /** Forks the workers and resolves once every one listens; rejects (and stops them) if one cannot. */
  static async start(init: WorkerPoolInit): Promise<WorkerPool> {
    const pool = new WorkerPool(init);
    // Before the first fork: the kernel, not the primary, hands out the connections.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: init.entry, args: [], serialization: 'advanced' });
    init.credentials.on('change', () => pool.#broadcast({ type: 'credentials', credentials: init.credentials.current }));
    const scheduleConfig = (): void => pool.#scheduleConfig();
    init.config.on('version', scheduleConfig);
    init.config.on('services', scheduleConfig);
    init.subscriptions.on('subscribe', scheduleConfig);
    init.subscriptions.on('unsubscribe', scheduleConfig);
    try {
      const started = await Promise.all(Array.from({ length: init.count }, (_, index) => pool.#spawn(pool.#slot(index))));
      pool.#bound = started[0];
      for (const slot of pool.#slots) slot.replaceOnExit = true;
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  get linkUrl(): string {
    return this.#bound?.linkUrl ?? '';
  }

  get upstreams(): readonly BoundUpstream[] {
    return this.#bound?.upstreams ?? [];
  }

  get proxyAddress(): string | undefined {
    return this.#bound?.proxyAddress;
  }

  /** The primary's metrics and every worker's, merged: for `/metrics` and the reports. */
  readonly metrics: MetricsSource & { render(): Promise<{ contentType: string; body: string }> } = {
    getMetricsAsJSON: async () => (await this.#merged()).getMetricsAsJSON(),
    render: async () => {
      const merged = await this.#merged();
      return { contentType: merged.contentType, body: await merged.metrics() };
    },
  };

  async status(): Promise<DataPlaneStatus> {
    return mergeStatus(await this.#collect());
  }

  async drain(deadline: number): Promise<boolean> {
    const results = await Promise.all(
      this.#readyWorkers().map(
        (worker) =>
          new Promise<boolean>((resolve) => {
            const onMessage = (message: unknown): void => {
              if (isWorkerMessage(message) && message.type === 'drained') done(message.complete);
            };
            const done = (complete: boolean): void => {
              worker.off('message', onMessage);
              worker.off('exit', onExit);
              resolve(complete);
            };
            // A worker gone while draining took its streams with it: not a clean drain.
            const onExit = (): void => done(false);
            worker.on('message', onMessage);
            worker.once('exit', onExit);
            send(worker, { type: 'drain', deadline });
          }),
      ),
    );
    return results.every(Boolean);
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(
      this.#slots.map(async (slot) => {
        const worker = slot.worker;
        if (worker === undefined || worker.isDead()) return;
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        const timer = setTimeout(() => worker.process.kill('SIGKILL'), CLOSE_TIMEOUT_MS);
        send(worker, { type: 'close' });
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  #slot(index: number): Slot {
    const slot: Slot = { index, worker: undefined, ready: false, startedAt: 0, youngDeaths: 0, replaceOnExit: false };
    this.#slots[index] = slot;
    return slot;
  }

  /** Forks the slot's worker and resolves when it listens. */
  #spawn(slot: Slot): Promise<Ready> {
    const { logger } = this.#init;
    const worker = cluster.fork();
    slot.worker = worker;
    slot.ready = false;
    slot.startedAt = Date.now();
    return new Promise<Ready>((resolve, reject) => {
      let settled = false;
      worker.on('message', (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        switch (message.type) {
          case 'hello':
            send(worker, this.#startMessage(slot.index));
            break;
          case 'ready':
            slot.ready = true;
            settled = true;
            logger.info({ worker: slot.index, pid: worker.process.pid }, 'worker ready');
            resolve(message);
            break;
          case 'failed':
            settled = true;
            reject(new WorkerError('TRELLIS_ERR_WORKER_START', `forwarding worker ${slot.index} could not start: ${message.message} [${message.code}]`));
            break;
          case 'want':
            this.#init.subscriptions.want(message.service);
            break;
          case 'collected':
            this.#pending.get(message.id)?.({ index: slot.index, pid: worker.process.pid ?? 0, metrics: message.metrics, status: message.status });
            break;
          case 'drained':
            break;
        }
      });
      worker.once('exit', (code: number | null, signal: string | null) => {
        slot.ready = false;
        if (!settled) {
          settled = true;
          reject(new WorkerError('TRELLIS_ERR_WORKER_START', `forwarding worker ${slot.index} exited before it was ready (${signal ?? `code ${code ?? '?'}`})`));
        }
        if (this.#closing || !slot.replaceOnExit) return;
        logger.warn({ worker: slot.index, pid: worker.process.pid, code, signal }, 'worker exited; replacing it');
        this.#respawn(slot);
      });
    });
  }

  #respawn(slot: Slot): void {
    slot.youngDeaths = Date.now() - slot.startedAt >= STABLE_WORKER_MS ? 0 : slot.youngDeaths + 1;
    const delayMs = slot.youngDeaths === 0 ? 0 : Math.min(RESPAWN_MAX_DELAY_MS, RESPAWN_BASE_DELAY_MS * 2 ** (slot.youngDeaths - 1));
    setTimeout(() => {
      if (this.#closing) return;
      this.#spawn(slot).then(
        (ready) => {
          if (ready.linkUrl !== this.linkUrl) this.#init.logger.warn({ worker: slot.index, linkUrl: ready.linkUrl, registered: this.linkUrl }, 'replacement worker listens on another link address');
        },
        // Its exit schedules the next attempt.
        (error: unknown) => this.#init.logger.error({ worker: slot.index, err: error }, 'replacement worker did not start'),
      );
    }, delayMs).unref();
  }

  #startMessage(index: number): PrimaryMessage {
    return { type: 'start', index, settings: this.#init.settings, credentials: this.#init.credentials.current, config: this.#configCopy(), entryOptions: this.#init.entryOptions };
  }

  #configCopy(): ConfigCopy {
    const { config, subscriptions } = this.#init;
    return { version: config.version, entries: config.entries(), held: { all: subscriptions.holdsAll, services: subscriptions.held() } };
  }

  /** One copy for every change made in the same turn (a delta touches several views). */
  #scheduleConfig(): void {
    if (this.#configScheduled) return;
    this.#configScheduled = true;
    setImmediate(() => {
      this.#configScheduled = false;
      this.#broadcast({ type: 'config', ...this.#configCopy() });
    });
  }

  #broadcast(message: PrimaryMessage): void {
    // A worker not yet ready gets the current state with its `start`.
    for (const worker of this.#readyWorkers()) send(worker, message);
  }

  #readyWorkers(): Worker[] {
    return this.#slots.filter((slot) => slot.ready && slot.worker !== undefined && !slot.worker.isDead()).map((slot) => slot.worker as Worker);
  }

  async #collect(): Promise<WorkerSummary[]> {
    const summaries = await Promise.all(
      this.#readyWorkers().map(
        (worker) =>
          new Promise<WorkerSummary | undefined>((resolve) => {
            const id = this.#nextRequestId++;
            const done = (summary: WorkerSummary | undefined): void => {
              clearTimeout(timer);
              this.#pending.delete(id);
              resolve(summary);
            };
            const timer = setTimeout(() => done(undefined), COLLECT_TIMEOUT_MS);
            this.#pending.set(id, done);
            send(worker, { type: 'collect', id });
          }),
      ),
    );
    return summaries.filter((summary): summary is WorkerSummary => summary !== undefined).sort((a, b) => a.index - b.index);
  }

  async #merged(): Promise<Registry> {
    const [primary, workers] = await Promise.all([this.#init.registry.getMetricsAsJSON(), this.#collect()]);
    return mergeMetrics(primary, workers);
  }
}

/**
 * Sends unless the channel is gone. A worker that has died but whose exit this process has not
 * yet seen still looks connected: the write then fails with EPIPE, which without a callback is
 * an 'error' event nobody listens to. Its 'exit' is what the pool acts on, so the error is dropped.
 */
export function send(worker: Worker, message: PrimaryMessage): void {
  if (worker.isConnected()) worker.send(message, ignoreChannelError);
}

function ignoreChannelError(): void {}
