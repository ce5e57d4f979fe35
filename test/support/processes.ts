import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

/** The repository root, from the compiled location of this file (dist/test/support). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
/** The `trellis` command, as a user runs it after the install. */
export const trellisBin = fileURLToPath(new URL('../../../bin/trellis.js', import.meta.url));

/** A running `trellis` process with what it printed so far. */
export interface TrellisProcess {
  readonly child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout match of `pattern`; rejects if the process exits first. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and resolves with the exit code (or signal) once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
  exited(): Promise<number | string>;
}

/** Starts `trellis ARGS...` with logs on stderr kept in memory. */
export function spawnTrellis(args: string[], env: NodeJS.ProcessEnv = {}): TrellisProcess {
  const child = spawn(process.execPath, [trellisBin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, TRELLIS_LOG_LEVEL: process.env['TRELLIS_LOG_LEVEL'] ?? 'warn', ...env },
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exit = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  const proc: TrellisProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited: () => exit,
    waitForOutput: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = (): boolean => {
          const match = pattern.exec(out);
          if (match === null) return false;
          cleanup();
          resolve(match);
          return true;
        };
        const onExit = (): void => {
          cleanup();
          reject(new Error(`trellis ${args[0]} exited before printing ${pattern}; stderr:\n${err}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`trellis ${args[0]} did not print ${pattern} within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          child.stdout.off('data', check);
          child.off('exit', onExit);
        };
        if (check()) return;
        child.stdout.on('data', check);
        child.once('exit', onExit);
      }),
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
  return proc;
}

/**
 * Runs `COMMAND ARGS...` to completion and returns everything it printed. It waits for
 * 'close', not 'exit': at 'exit' the last of what the process wrote to its pipes may still
 * be unread, and whatever still holds them (a child it left running) may write more.
 */
export async function runToEnd(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(command, args, { cwd: repoRoot, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  return { code: code ?? (signal as string), stdout, stderr };
}

/** Runs `trellis ARGS...` to completion. */
export async function runTrellis(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return runToEnd(process.execPath, [trellisBin, ...args], { TRELLIS_LOG_LEVEL: process.env['TRELLIS_LOG_LEVEL'] ?? 'warn', ...env });
}
