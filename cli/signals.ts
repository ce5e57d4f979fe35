import type { Logger } from 'pino';

const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The stop signals of a process that stops gracefully, from {@link watchStopSignals}. */
export interface StopSignals {
  /** The first SIGINT, SIGTERM or SIGHUP, which then no longer kills the process. */
  readonly first: Promise<NodeJS.Signals>;
  /** What a later signal runs before the exit (cut short work, such as a drain). */
  onSecond(beforeExit: () => Promise<void>): void;
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP from now on. The first resolves `first`; any later one
 * means "now": the `onSecond` work runs, the log says why, and the process exits 0 rather than
 * dying of the signal. The listeners stay installed from the first signal to the exit: with
 * none, even for a moment, Node restores the default action and a signal then kills.
 */
export function watchStopSignals(logger: Logger): StopSignals {
  let beforeExit = (): Promise<void> => Promise.resolve();
  let signalled = false;
  let exiting = false;
  let resolveFirst: (signal: NodeJS.Signals) => void = () => undefined;
  const first = new Promise<NodeJS.Signals>((resolve) => (resolveFirst = resolve));
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!signalled) {
      signalled = true;
      resolveFirst(signal);
      return;
    }
    if (exiting) return;
    exiting = true;
    logger.warn({ signal }, 'second signal: stopping now');
    void beforeExit()
      .catch((err: unknown) => logger.error({ err }, 'could not cut the shutdown short'))
      .finally(() => process.exit(0));
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return {
    first,
    onSecond: (work) => {
      beforeExit = work;
    },
  };
}
