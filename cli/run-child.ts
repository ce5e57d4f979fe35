import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/** The signals `trellis run` passes on to its command instead of dying of them. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** The exit status a shell reports for a process killed by `signal`: 128 + its number. */
export function exitCodeForSignal(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * Catches SIGINT, SIGTERM and SIGHUP from the moment it is made. Before a command runs, the
 * first one is reported through {@link SignalRelay.caught} (the run gives up); once a command
 * runs, every one is passed on to it, and the command decides when the run ends.
 *
 * From a terminal, Ctrl-C reaches the command directly too (same process group), so it may
 * see SIGINT twice; a `kill` aimed at `trellis run` alone reaches it only through this relay.
 */
export class SignalRelay {
  /** Resolves with the first signal caught while no command was running. */
  readonly caught: Promise<NodeJS.Signals>;
  #child: ChildProcess | undefined;
  #resolveCaught: (signal: NodeJS.Signals) => void = () => undefined;
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    if (this.#child === undefined) this.#resolveCaught(signal);
    else this.#child.kill(signal);
  };

  constructor() {
    this.caught = new Promise((resolve) => (this.#resolveCaught = resolve));
    for (const signal of FORWARDED_SIGNALS) process.on(signal, this.#onSignal);
  }

  /** From now on, signals go to `child`. */
  forwardTo(child: ChildProcess): void {
    this.#child = child;
  }

  /** Restores the default handling: a later signal ends the run itself. */
  dispose(): void {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, this.#onSignal);
  }
}

/** Why a command could not start, as a shell reports it: 127 not found, 126 found but not runnable. */
function startFailure(command: string, error: NodeJS.ErrnoException): { line: string; exitCode: number } {
  if (error.code === 'ENOENT') return { line: `cannot run "${command}": command not found [ENOENT]`, exitCode: 127 };
  if (error.code === 'EACCES') return { line: `cannot run "${command}": permission denied [EACCES]`, exitCode: 126 };
  return { line: `cannot run "${command}": ${error.message}${error.code === undefined ? '' : ` [${error.code}]`}`, exitCode: 126 };
}

/**
 * Runs `command` with `args` on this process's stdin, stdout and stderr (its output is its
 * own: nothing else writes to stdout during a run), passing signals on through `signals`.
 * Resolves with its exit status, 128 + the signal number when a signal killed it, or 127/126
 * when it could not start (after one line on stderr saying why).
 */
export function runChildCommand(command: string, args: readonly string[], env: NodeJS.ProcessEnv, signals: SignalRelay): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: 'inherit', env });
    // A pid means the process exists (spawn is synchronous underneath); signals can go to it at once.
    if (child.pid !== undefined) signals.forwardTo(child);
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a failed kill(); the exit still comes
      const failure = startFailure(command, error);
      process.stderr.write(`trellis: ${failure.line}\n`);
      resolve(failure.exitCode);
    });
    child.once('exit', (code, signal) => resolve(code ?? exitCodeForSignal(signal ?? 'SIGKILL')));
  });
}
