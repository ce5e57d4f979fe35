// One forwarding worker of `trellis sidecar --workers N`, loaded by its entry (cli/sidecar-worker.ts):
// it waits for the primary's `start` message and runs a data plane until told to close.
import type { Logger } from 'pino';
import { egressConnectorFromEnv } from '../sidecar/links/http-connect-connector.js';
import type { PrimaryMessage, WorkerMessage } from '../sidecar/workers/messages.js';
import { isPrimaryMessage } from '../sidecar/workers/messages.js';
import { ForwardingWorker } from '../sidecar/workers/worker.js';
import type { LogFormat } from './log-format.js';
import { createFileLogger, createLogger } from './logger.js';

/** What the primary's command line decided for its workers, beyond the data-plane settings. */
export interface WorkerEntryOptions {
  logName: string;
  logFormat: LogFormat;
  /** Logs appended to this file instead of stderr (`trellis run --log-file`). */
  logFile?: string;
  /** `--egress-proxy`, resolved again here with the same environment. */
  egressProxy?: string;
}

function send(message: WorkerMessage): void {
  // A primary gone mid-send fails the write (EPIPE); its 'disconnect' is what ends this worker.
  if (process.connected) process.send?.(message, ignoreChannelError);
}

function ignoreChannelError(): void {
  // The 'disconnect' handler in main() ends the worker.
}

function main(): void {
  let worker: ForwardingWorker | undefined;
  let logger: Logger | undefined;
  // Messages in order: a config copy must not overtake the start, nor a close a drain.
  let queue: Promise<void> = Promise.resolve();
  const exit = (code: number): void => {
    void (worker?.close() ?? Promise.resolve()).finally(() => process.exit(code));
  };
  // The primary drains and stops its workers; a signal to the whole group is its to act on.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => undefined);
  // The primary is gone: so is the identity these links prove.
  process.on('disconnect', () => exit(0));
  process.on('message', (message: unknown) => {
    if (!isPrimaryMessage(message)) return;
    queue = queue.then(() => handle(message)).catch((error: unknown) => {
      logger?.error({ err: error }, 'worker failed');
      process.exit(1);
    });
  });
  const handle = async (message: PrimaryMessage): Promise<void> => {
    if (message.type === 'start') {
      const options = message.entryOptions as WorkerEntryOptions;
      const base = options.logFile === undefined ? createLogger(options.logName, options.logFormat) : createFileLogger(options.logName, options.logFile);
      logger = base.child({ worker: message.index });
      worker = await ForwardingWorker.start(message, { send, logger, egress: egressConnectorFromEnv(options.egressProxy, process.env) });
      return;
    }
    if (worker === undefined) return;
    await worker.handle(message);
    if (message.type === 'close') process.exit(0);
  };
  send({ type: 'hello' });
}

main();
