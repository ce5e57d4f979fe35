import type { Logger } from 'pino';

/** Resolves with the first SIGINT, SIGTERM or SIGHUP, which then no longer kills the process. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.off('SIGHUP', onSignal);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.on('SIGHUP', onSignal);
  });
}

/**
 * After the first signal, the next one means "now": `beforeExit` (cut short work, such as a
 * drain) runs, the log says why, and the process exits 0 rather than dying of the signal.
 */
export function exitOnNextSignal(logger: Logger, beforeExit: () => Promise<void> = () => Promise.resolve()): void {
  void untilSignal().then(async (signal) => {
    logger.warn({ signal }, 'second signal: stopping now');
    await beforeExit();
    process.exit(0);
  });
}
