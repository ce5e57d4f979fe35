import { Duplex } from 'node:stream';
import { ErrorCode, errorCodeName } from '../../proto/errors.js';
import { MuxError } from './errors.js';
import type { MuxStream } from './stream.js';

/**
 * A mux stream as a Node Duplex, so that a TLS session can run inside it (a tunnel carries the
 * two end sidecars' own TLS). Credit follows the reader: bytes the Duplex's consumer has not
 * taken are not returned to the peer, so a slow reader slows only this stream.
 *
 * A reset of the stream destroys the Duplex with MuxError `TRELLIS_ERR_STREAM_RESET` (its
 * `wireCode` is the reset's code); destroying the Duplex resets the stream with STREAM_ABORTED.
 */
export class MuxStreamDuplex extends Duplex {
  readonly #stream: MuxStream;
  #unconsumedBytes = 0;
  #pendingWrite: ((error?: Error | null) => void) | undefined;

  constructor(stream: MuxStream) {
    super({ allowHalfOpen: true });
    this.#stream = stream;
    stream.on('data', (payload: Buffer) => {
      if (this.push(payload)) stream.consumed(payload.length);
      else this.#unconsumedBytes += payload.length;
    });
    stream.on('end', () => this.push(null));
    stream.on('drain', () => {
      const callback = this.#pendingWrite;
      this.#pendingWrite = undefined;
      callback?.();
    });
    stream.on('reset', (code: number, message: string, local: boolean) => {
      if (local && this.destroyed) return;
      const error = new MuxError('TRELLIS_ERR_STREAM_RESET', `stream reset${local ? ' here' : ' by the peer'}: ${errorCodeName(code)} ${message}`, { wireCode: code });
      this.destroy(error);
    });
    stream.on('close', () => {
      // Both FINs done: nothing more either way.
      if (!this.destroyed && stream.state === 'closed') this.push(null);
    });
  }

  /** The stream underneath. */
  get stream(): MuxStream {
    return this.#stream;
  }

  override _read(): void {
    if (this.#unconsumedBytes === 0) return;
    const bytes = this.#unconsumedBytes;
    this.#unconsumedBytes = 0;
    this.#stream.consumed(bytes);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#stream.state === 'closed' || this.#stream.state === 'localClosed') {
      callback(new MuxError('TRELLIS_ERR_STREAM_RESET', 'the stream is closed for writing'));
      return;
    }
    if (this.#stream.write(chunk)) callback();
    else this.#pendingWrite = callback;
  }

  /** Chunks written together (a TLS session's records of one flush) leave in one DATA frame. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    if (this.#stream.state === 'closed' || this.#stream.state === 'localClosed') {
      callback(new MuxError('TRELLIS_ERR_STREAM_RESET', 'the stream is closed for writing'));
      return;
    }
    if (this.#stream.writev(chunks.map(({ chunk }) => chunk))) callback();
    else this.#pendingWrite = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#stream.state === 'open' || this.#stream.state === 'remoteClosed') this.#stream.end();
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#stream.state !== 'closed') this.#stream.reset(ErrorCode.STREAM_ABORTED, error?.message ?? 'tunnel closed');
    const pending = this.#pendingWrite;
    this.#pendingWrite = undefined;
    pending?.(error);
    callback(error);
  }
}
