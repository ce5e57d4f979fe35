import { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { TrellisError } from '../../proto/errors.js';

/**
 * Largest WebSocket message a link sends. The TLS above hands over everything it encrypted
 * since its last write as one buffer (measured: up to ~4 MiB under a fast producer), so a
 * write may span several messages; the limit bounds what either end buffers per message.
 */
export const MAX_WS_LINK_MESSAGE_BYTES = 1024 * 1024;

/** What a link end accepts per message: a peer's batch plus slack for framing differences. */
export const MAX_WS_LINK_PAYLOAD_BYTES = MAX_WS_LINK_MESSAGE_BYTES + 64 * 1024;

/** Close codes of RFC 6455 §7.4.1 this adapter sends. */
const CLOSE_NORMAL = 1000;
const CLOSE_UNSUPPORTED_DATA = 1003;
const CLOSE_INTERNAL_ERROR = 1011;

/**
 * An open WebSocket as a byte stream: every write (or corked batch of writes) goes out as one
 * binary message of at most {@link MAX_WS_LINK_MESSAGE_BYTES} (more when larger), and received
 * binary messages are read back as bytes. Message boundaries mean nothing (PROTOCOL.md,
 * "Transport"); a text message is a protocol error that ends the stream.
 *
 * Backpressure both ways: ws gets the next message only once it has written the previous one
 * to its socket, so while the peer is slow the bytes stay in this stream's writable buffer and
 * write() returns false; and when the reader stops reading, the WebSocket (and so its TCP
 * socket) is paused until it asks for more.
 *
 * There is no half-close in WebSocket (a Close frame ends both directions), so `end()` sends
 * nothing: the link's TLS carries its own close_notify. The WebSocket closes when this stream
 * is destroyed, which TLS does once both of its directions are done.
 */
export class WebSocketDuplex extends Duplex {
  readonly #ws: WebSocket;
  readonly #maxMessageBytes: number;

  constructor(ws: WebSocket, maxMessageBytes = MAX_WS_LINK_MESSAGE_BYTES) {
    // Not half-open, like a TCP link: the TLS above inherits this and closes both ways at once.
    super({ allowHalfOpen: false });
    this.#ws = ws;
    this.#maxMessageBytes = maxMessageBytes;
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    ws.on('error', (error: Error & { code?: string }) => this.destroy(wsErrorOf(error)));
    ws.on('close', () => {
      // Whatever the peer sent before its Close is still delivered; then the stream ends.
      this.push(null);
      this.once('end', () => this.destroy());
    });
  }

  /** Bytes sent to ws but not yet written to its socket (the outer TLS), for tests and stats. */
  get bufferedAmount(): number {
    return this.#ws.bufferedAmount;
  }

  override _read(): void {
    this.#ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#send(messagesOf([chunk], this.#maxMessageBytes), callback);
  }

  /** One message per batch (up to the limit), not one per chunk: writers batch through cork/uncork. */
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.#send(
      messagesOf(
        chunks.map(({ chunk }) => chunk),
        this.#maxMessageBytes,
      ),
      callback,
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const ws = this.#ws;
    if (ws.isPaused) ws.resume();
    if (ws.readyState === ws.CONNECTING) ws.terminate();
    else if (ws.readyState === ws.OPEN) ws.close(closeCodeOf(error));
    callback(error);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    // After destroy, push() is always false: pausing then would stall the closing handshake
    // (the peer's Close frame would sit unread until ws gives up after 30 s).
    if (this.destroyed) return;
    if (!isBinary) {
      this.destroy(new TrellisError('TRELLIS_ERR_WS_TEXT_MESSAGE', 'the link peer sent a text WebSocket message; links carry binary messages only'));
      return;
    }
    if (!this.push(data)) this.#ws.pause();
  }

  /**
   * Sends `messages` one after the other, each once ws has written the previous one to its
   * socket: ws holds at most one message, and the rest stays counted in this stream's
   * writable buffer, where write() reports it to the producer.
   */
  #send(messages: Buffer[], callback: (error?: Error | null) => void, index = 0): void {
    const ws = this.#ws;
    if (ws.readyState !== ws.OPEN) {
      callback(new TrellisError('TRELLIS_ERR_LINK_CLOSED', 'the WebSocket under the link is closed'));
      return;
    }
    const message = messages[index];
    if (message === undefined) {
      callback();
      return;
    }
    ws.send(message, { binary: true }, (error) => (error ? callback(error) : this.#send(messages, callback, index + 1)));
  }
}

/** `chunks` packed into messages of at most `maxBytes`, in order; a larger chunk spans several. */
function messagesOf(chunks: readonly Buffer[], maxBytes: number): Buffer[] {
  const messages: Buffer[] = [];
  let group: Buffer[] = [];
  let groupBytes = 0;
  const flush = (): void => {
    if (groupBytes > 0) messages.push(group.length === 1 && group[0] !== undefined ? group[0] : Buffer.concat(group, groupBytes));
    group = [];
    groupBytes = 0;
  };
  for (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length; ) {
      const part = chunk.subarray(offset, offset + maxBytes - groupBytes);
      group.push(part);
      groupBytes += part.length;
      offset += part.length;
      if (groupBytes === maxBytes) flush();
    }
  }
  flush();
  return messages;
}

function wsErrorOf(error: Error & { code?: string }): TrellisError {
  if (error instanceof TrellisError) return error;
  if (error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
    return new TrellisError('TRELLIS_ERR_WS_MESSAGE_TOO_LARGE', `the link peer sent a WebSocket message above ${MAX_WS_LINK_PAYLOAD_BYTES} bytes`, { cause: error });
  }
  return new TrellisError('TRELLIS_ERR_WS_PROTOCOL', `the WebSocket under the link failed: ${error.message}`, { cause: error });
}

/** ws closes by itself on a peer's protocol error; what is left is a text message or a local failure. */
function closeCodeOf(error: Error | null): number {
  if (error === null) return CLOSE_NORMAL;
  return error instanceof TrellisError && error.code === 'TRELLIS_ERR_WS_TEXT_MESSAGE' ? CLOSE_UNSUPPORTED_DATA : CLOSE_INTERNAL_ERROR;
}
