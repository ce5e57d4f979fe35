/**
 * A one-line note on a terminal's stderr saying what the command is waiting for ("checking the
 * mesh…"), so that a slow control plane does not look like a hung command. Written only when
 * stderr is a terminal: a pipe or a file never gets it, so scripts read clean output. The line
 * is erased once nothing is pending, before the command prints its answer.
 */

/** Carriage return, then erase the whole line (ECMA-48 EL 2). */
const ERASE_LINE = '\r\u001b[2K';
/** A note longer than this is cut, so that it never wraps onto a second line it cannot erase. */
const MAX_NOTE_CHARS = 72;

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

export class ProgressLine {
  readonly #stream: ProgressStream;
  readonly #enabled: boolean;
  /** Notes of the steps under way, innermost last: the innermost is shown. */
  readonly #notes: string[] = [];

  constructor(stream: ProgressStream, env: NodeJS.ProcessEnv = process.env) {
    this.#stream = stream;
    // A dumb terminal cannot erase a line.
    this.#enabled = stream.isTTY === true && env['TERM'] !== 'dumb';
  }

  /** Shows `note` while `work` runs, then the note of the step around it, or nothing. */
  async during<T>(note: string, work: () => Promise<T>): Promise<T> {
    this.#notes.push(note);
    this.#show();
    try {
      return await work();
    } finally {
      this.#notes.splice(this.#notes.lastIndexOf(note), 1);
      this.#show();
    }
  }

  #show(): void {
    if (!this.#enabled) return;
    const note = this.#notes.at(-1);
    this.#stream.write(note === undefined ? ERASE_LINE : `${ERASE_LINE}${note.length > MAX_NOTE_CHARS ? `${note.slice(0, MAX_NOTE_CHARS - 1)}…` : note}`);
  }
}
