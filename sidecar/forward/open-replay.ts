import { ErrorCode } from '../../proto/errors.js';

/**
 * @default 64 KiB — an outbound stream keeps at most this much of what its app sent until the
 * destination answers; past it the stream can no longer be replayed elsewhere.
 */
export const DEFAULT_OPEN_REPLAY_LIMIT_BYTES = 64 * 1024;

/** What a replay hands to the next stream: the app's bytes so far, and whether it had finished. */
export interface ReplayedOpening {
  chunks: readonly Buffer[];
  appEnded: boolean;
}

/**
 * The bytes an app sent on an outbound stream that its destination has not answered yet.
 *
 * A destination that is draining refuses a stream it had not taken yet with RESET GOING_AWAY
 * (an OPEN that crossed its GOAWAY), and a refused stream's bytes reached no app
 * (`proto/PROTOCOL.md`, "GOAWAY"). So such a connection can be opened again, on a new link or
 * another endpoint, with these bytes sent first, and the app never hears of the drain. The
 * chunks are the socket's own buffers, held by reference; they are let go at the first sign
 * that the destination took the stream (bytes or a FIN from it), or once more than the limit
 * was sent, after which a refusal resets the connection as any other reset does.
 */
export class OpenReplay {
  readonly #limitBytes: number;
  /** Made at the first chunk: most streams are answered before their app sends again. */
  #chunks: Buffer[] | undefined;
  #bytes = 0;
  #appEnded = false;
  #replayable = true;
  #handedOver = false;

  constructor(seed?: ReplayedOpening, limitBytes = DEFAULT_OPEN_REPLAY_LIMIT_BYTES) {
    this.#limitBytes = limitBytes;
    for (const chunk of seed?.chunks ?? []) this.record(chunk);
    if (seed?.appEnded === true) this.recordAppEnd();
  }

  /** Whether a refusal at open could still be replayed. */
  get replayable(): boolean {
    return this.#replayable;
  }

  /** Whether {@link OpenReplay.take} handed the bytes to a next stream. */
  get handedOver(): boolean {
    return this.#handedOver;
  }

  /** The app sent `chunk` on the stream. */
  record(chunk: Buffer): void {
    if (!this.#replayable) return;
    if (this.#bytes + chunk.length > this.#limitBytes) {
      this.settle();
      return;
    }
    (this.#chunks ??= []).push(chunk);
    this.#bytes += chunk.length;
  }

  /** The app finished sending (its FIN goes on the stream). */
  recordAppEnd(): void {
    this.#appEnded = true;
  }

  /** The destination answered, or too much was sent: nothing can be replayed any more. */
  settle(): void {
    this.#replayable = false;
    this.#chunks = undefined;
    this.#bytes = 0;
  }

  /** Whether a RESET with `code` (`local`: sent by this end) is a refusal this replay can undo. */
  refusedAtOpen(code: number, local: boolean): boolean {
    return this.#replayable && !local && code === ErrorCode.GOING_AWAY;
  }

  /** Hands over what the app sent, for the next stream; this replay is settled. */
  take(): ReplayedOpening {
    const taken = { chunks: this.#chunks ?? [], appEnded: this.#appEnded };
    this.settle();
    this.#handedOver = true;
    return taken;
  }
}
