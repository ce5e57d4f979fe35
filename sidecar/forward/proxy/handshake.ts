import type { ProxyError } from './errors.js';

/** The destination a client asked the proxy for, as it named it. */
export interface ProxyTarget {
  /** A domain name, or an IP address in text form. */
  host: string;
  /** Carried for logs only: the destination sidecar knows its app's port. */
  port: number;
  addressType: 'domain' | 'ipv4' | 'ipv6';
}

/** A completed handshake: where to go, and what to send there first. */
export interface ProxyRequest {
  target: ProxyTarget;
  /**
   * Bytes for the destination, in order, before anything read later from the client: what
   * the client sent after its handshake and, for a plain HTTP request, the rewritten head.
   */
  initialBytes: Buffer;
}

/** What one {@link ProxyHandshake.push} produced. */
export interface HandshakeStep {
  /** Bytes to write to the client now (the SOCKS5 method selection). */
  reply?: Buffer;
  /** Set once the handshake is complete; `push` must not be called again. */
  request?: ProxyRequest;
}

/**
 * A proxy protocol's handshake as a pure state machine: bytes in, replies and a request out,
 * no I/O. Every length is checked before bytes are held, so `bufferedBytes` stays under the
 * protocol's limit whatever the client sends.
 */
export interface ProxyHandshake {
  readonly protocol: 'socks5' | 'http';
  /** Bytes held while waiting for the rest of the handshake. */
  readonly bufferedBytes: number;
  /**
   * Feeds the next bytes from the client.
   * @throws ProxyError when the bytes break the protocol or ask for something unsupported.
   */
  push(chunk: Buffer): HandshakeStep;
  /** What to tell the client once its connection is established (nothing for plain HTTP). */
  successReply(): Buffer | undefined;
  /** What to tell the client about `error` before closing, in its protocol; undefined when it has no way to say it. */
  failureReply(error: ProxyError): Buffer | undefined;
}
