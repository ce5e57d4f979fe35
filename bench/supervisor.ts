/**
 * Every process the benchmark starts goes through a ProcessSupervisor, so that all of them end
 * with the run: on success, on a thrown error, on Ctrl-C, and on an unexpected exit of the
 * harness itself (a left-over proxy would skew the next run's numbers).
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync, spawn } from 'node:child_process';

/** Open files asked for the processes that hold many connections (two fds per proxied one). */
const WANTED_FILES_LIMIT = 65_536;
/**
 * Raises the soft open-files limit as far as it goes: to the wanted figure where privilege
 * allows raising the hard limit, else to the hard limit.
 */
const RAISE_FILES_LIMIT_SCRIPT = `ulimit -n ${WANTED_FILES_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"`;
/** How long a stopped process gets to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 3_000;
/** Output kept per process for error messages; older output is dropped. */
const MAX_KEPT_OUTPUT_CHARS = 64 * 1024;

export interface SpawnOptions {
  /** Raise the open-files limit before exec (through `ulimit -n` in a shell). */
  manyFiles?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep stdin open as a pipe (for clients told when to finish). */
  stdinPipe?: boolean;
}

/** A process started by the supervisor, with its recent output. */
export class SupervisedProcess {
  readonly #child: ChildProcess;
  readonly #exit: Promise<number | string>;
  #stdout = '';
  #stderr = '';

  constructor(
    readonly name: string,
    child: ChildProcess,
  ) {
    this.#child = child;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.#stdout = keepTail(this.#stdout + chunk)));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.#stderr = keepTail(this.#stderr + chunk)));
    this.#exit = new Promise((resolve) => {
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
      // A failed spawn (missing binary) has no exit event: it surfaces as one, so callers see
      // one kind of end. Other errors (a failed kill) are followed by a real exit.
      child.on('error', (error) => {
        if (child.pid === undefined) resolve(`spawn error: ${error.message}`);
      });
    });
  }

  get pid(): number {
    return this.#child.pid ?? 0;
  }

  get running(): boolean {
    return this.#child.exitCode === null && this.#child.signalCode === null && this.#child.pid !== undefined;
  }

  stdout(): string {
    return this.#stdout;
  }

  stderr(): string {
    return this.#stderr;
  }

  exited(): Promise<number | string> {
    return this.#exit;
  }

  /** Writes a line to the process's stdin (opened with `stdinPipe`). */
  tell(line: string): void {
    this.#child.stdin?.write(`${line}\n`);
  }

  /** Resolves with the first match of `pattern` in stdout (or stderr); rejects on exit or timeout. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const match = pattern.exec(this.#stdout) ?? pattern.exec(this.#stderr);
        if (match === null) return;
        cleanup();
        resolve(match);
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error(`${this.name} exited before printing ${String(pattern)}: ${this.lastWords()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${this.name} did not print ${String(pattern)} within ${timeoutMs} ms: ${this.lastWords()}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#child.stdout?.off('data', check);
        this.#child.stderr?.off('data', check);
        this.#child.off('exit', onExit);
      };
      this.#child.stdout?.on('data', check);
      this.#child.stderr?.on('data', check);
      this.#child.once('exit', onExit);
      check();
    });
  }

  /** The end of what the process printed, for error messages. */
  lastWords(maxChars = 600): string {
    const text = `${this.#stderr}\n${this.#stdout}`.trim();
    return text.length > maxChars ? `…${text.slice(-maxChars)}` : text;
  }

  /** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.#child.kill('SIGTERM');
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.#exit;
    clearTimeout(timer);
  }

  /** Synchronous last resort, for the harness's own exit. */
  killNow(): void {
    if (this.running) this.#child.kill('SIGKILL');
  }
}

/** Starts processes and guarantees they all end with the run. */
export class ProcessSupervisor {
  readonly #processes = new Set<SupervisedProcess>();
  readonly #onExit = (): void => this.killAllNow();
  readonly #onSignal = (signal: NodeJS.Signals): void => {
    this.killAllNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };

  constructor() {
    process.on('exit', this.#onExit);
    process.on('SIGINT', this.#onSignal);
    process.on('SIGTERM', this.#onSignal);
  }

  spawn(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): SupervisedProcess {
    const [file, argv] = options.manyFiles === true ? withManyFiles(command, args) : [command, [...args]];
    const child = spawn(file, argv, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: [options.stdinPipe === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const supervised = new SupervisedProcess(name, child);
    this.#processes.add(supervised);
    void supervised.exited().then(() => this.#processes.delete(supervised));
    return supervised;
  }

  /** Runs a command to completion (bounded by `timeoutMs`) and returns its output. */
  async run(name: string, command: string, args: readonly string[], timeoutMs: number, options: SpawnOptions = {}): Promise<{ code: number | string; stdout: string; stderr: string }> {
    const proc = this.spawn(name, command, args, options);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      void proc.stop();
    }, timeoutMs);
    const code = await proc.exited();
    clearTimeout(timer);
    if (timedOut) throw new Error(`${name} did not finish within ${Math.round(timeoutMs / 1000)} s: ${proc.lastWords()}`);
    return { code, stdout: proc.stdout(), stderr: proc.stderr() };
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#processes].map((proc) => proc.stop()));
  }

  killAllNow(): void {
    for (const proc of this.#processes) proc.killNow();
  }

  /** Stops everything and removes the process-wide handlers. */
  async close(): Promise<void> {
    await this.stopAll();
    process.off('exit', this.#onExit);
    process.off('SIGINT', this.#onSignal);
    process.off('SIGTERM', this.#onSignal);
  }
}

/**
 * Wraps a command in `sh -c 'ulimit -n …; exec …'`. Raising the hard limit needs privilege; an
 * unprivileged run falls back to the hard limit it has. `exec` keeps the pid that of the command,
 * so RSS readings and signals reach the real process.
 */
function withManyFiles(command: string, args: readonly string[]): [string, string[]] {
  return ['sh', ['-c', `${RAISE_FILES_LIMIT_SCRIPT}; exec "$@"`, 'sh', command, ...args]];
}

/**
 * The open-files limit a process started with `manyFiles` gets on this machine. Proxies that
 * hold two descriptors per connection are bounded by half of it.
 */
export function manyFilesLimit(): number {
  const output = execFileSync('sh', ['-c', `${RAISE_FILES_LIMIT_SCRIPT}; ulimit -n`], { encoding: 'utf8', timeout: 10_000 });
  const limit = Number(output.trim());
  if (!Number.isInteger(limit) || limit <= 0) throw new Error(`cannot read the open-files limit (got "${output.trim()}")`);
  return limit;
}

function keepTail(text: string): string {
  return text.length > MAX_KEPT_OUTPUT_CHARS ? text.slice(-MAX_KEPT_OUTPUT_CHARS) : text;
}
