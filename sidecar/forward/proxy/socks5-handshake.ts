/**
 * The server side of a SOCKS5 handshake (RFC 1928), limited to what a mesh proxy needs: the
 * "no authentication" method and the CONNECT command. Pure: bytes in, replies out.
 */
import { ProxyError } from './errors.js';
import type { ProxyErrorCode } from './errors.js';
import type { HandshakeStep, ProxyHandshake, ProxyTarget } from './handshake.js';

/** The version byte that starts every SOCKS5 message; also how the proxy port recognises SOCKS5. */
export const SOCKS5_VERSION = 0x05;

const METHOD_NO_AUTHENTICATION = 0x00;
const METHOD_NONE_ACCEPTABLE = 0xff;
const COMMAND_CONNECT = 0x01;
const ADDRESS_TYPE_IPV4 = 0x01;
const ADDRESS_TYPE_DOMAIN = 0x03;
const ADDRESS_TYPE_IPV6 = 0x04;

/** Reply codes of RFC 1928 section 6. */
export const Socks5Reply = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED_BY_RULESET: 0x02,
  HOST_UNREACHABLE: 0x04,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** Largest greeting: version, method count, 255 methods. */
export const MAX_SOCKS5_GREETING_BYTES = 2 + 255;
/** Largest request: version, command, reserved, address type, a 255-byte name with its length, port. */
export const MAX_SOCKS5_REQUEST_BYTES = 4 + 1 + 255 + 2;

const REPLY_CODE_BY_ERROR: Partial<Record<ProxyErrorCode, number>> = {
  TRELLIS_ERR_PROXY_NOT_MESH: Socks5Reply.NOT_ALLOWED_BY_RULESET,
  TRELLIS_ERR_PROXY_NO_ROUTE: Socks5Reply.HOST_UNREACHABLE,
  TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND: Socks5Reply.COMMAND_NOT_SUPPORTED,
  TRELLIS_ERR_PROXY_UNSUPPORTED_ADDRESS_TYPE: Socks5Reply.ADDRESS_TYPE_NOT_SUPPORTED,
};

type Phase = 'greeting' | 'request' | 'done';

/** One client's SOCKS5 handshake: the greeting, then one CONNECT request. */
export class Socks5Handshake implements ProxyHandshake {
  readonly protocol = 'socks5';
  #phase: Phase = 'greeting';
  /** Bytes of the message being parsed; always shorter than that message's largest size. */
  #pending: Buffer = Buffer.alloc(0);

  get bufferedBytes(): number {
    return this.#pending.length;
  }

  push(chunk: Buffer): HandshakeStep {
    if (this.#phase === 'done') throw new Error('the SOCKS5 handshake is already complete');
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    const step: HandshakeStep = {};
    if (this.#phase === 'greeting') {
      const greetingBytes = this.#greetingLength();
      if (greetingBytes === undefined) return step;
      step.reply = Buffer.from([SOCKS5_VERSION, METHOD_NO_AUTHENTICATION]);
      this.#pending = this.#pending.subarray(greetingBytes);
      this.#phase = 'request';
    }
    const parsed = this.#parseRequest();
    if (parsed === undefined) return step;
    this.#phase = 'done';
    step.request = { target: parsed.target, initialBytes: this.#pending.subarray(parsed.requestBytes) };
    this.#pending = Buffer.alloc(0);
    return step;
  }

  successReply(): Buffer {
    return replyBytes(Socks5Reply.SUCCEEDED);
  }

  failureReply(error: ProxyError): Buffer | undefined {
    if (this.#phase === 'greeting') {
      // Before a method is chosen the only thing a client understands is "no acceptable method".
      return error.code === 'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD' ? Buffer.from([SOCKS5_VERSION, METHOD_NONE_ACCEPTABLE]) : undefined;
    }
    return replyBytes(REPLY_CODE_BY_ERROR[error.code] ?? Socks5Reply.GENERAL_FAILURE);
  }

  /** The greeting's length once all of it is here and it offers "no authentication". */
  #greetingLength(): number | undefined {
    const pending = this.#pending;
    if (pending.length < 2) return undefined;
    checkVersion(pending[0] ?? 0, 'greeting');
    const methodCount = pending[1] ?? 0;
    if (methodCount === 0) throw new ProxyError('TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD', 'SOCKS5 greeting offers no authentication method');
    if (pending.length < 2 + methodCount) return undefined;
    const methods = pending.subarray(2, 2 + methodCount);
    if (!methods.includes(METHOD_NO_AUTHENTICATION)) {
      throw new ProxyError(
        'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD',
        `SOCKS5 client offers methods [${[...methods].join(', ')}] but this proxy accepts only 0 (no authentication)`,
      );
    }
    return 2 + methodCount;
  }

  #parseRequest(): { target: ProxyTarget; requestBytes: number } | undefined {
    const pending = this.#pending;
    if (pending.length < 5) return undefined;
    checkVersion(pending[0] ?? 0, 'request');
    const command = pending[1] ?? 0;
    if (command !== COMMAND_CONNECT) {
      throw new ProxyError('TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND', `SOCKS5 command ${command} is not supported: only CONNECT (1)`);
    }
    // pending[2] is reserved; RFC 1928 asks for 0 but clients are not held to it.
    const addressType = pending[3] ?? 0;
    const addressBytes = addressLength(addressType, pending[4] ?? 0);
    const requestBytes = 4 + addressBytes + 2;
    if (pending.length < requestBytes) return undefined;
    const address = pending.subarray(4, 4 + addressBytes);
    const port = pending.readUInt16BE(4 + addressBytes);
    return { target: { ...decodeAddress(addressType, address), port }, requestBytes };
  }
}

function checkVersion(version: number, message: string): void {
  if (version !== SOCKS5_VERSION) {
    throw new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', `SOCKS5 ${message} starts with version ${version}, not 5`);
  }
}

/** Bytes of DST.ADDR for `addressType`; for a domain, `firstByte` is the name's length byte. */
function addressLength(addressType: number, firstByte: number): number {
  switch (addressType) {
    case ADDRESS_TYPE_IPV4:
      return 4;
    case ADDRESS_TYPE_IPV6:
      return 16;
    case ADDRESS_TYPE_DOMAIN:
      if (firstByte === 0) throw new ProxyError('TRELLIS_ERR_PROXY_BAD_REQUEST', 'SOCKS5 request names an empty domain');
      return 1 + firstByte;
    default:
      throw new ProxyError('TRELLIS_ERR_PROXY_UNSUPPORTED_ADDRESS_TYPE', `SOCKS5 address type ${addressType} is unknown (1, 3 and 4 exist)`);
  }
}

function decodeAddress(addressType: number, address: Buffer): Omit<ProxyTarget, 'port'> {
  if (addressType === ADDRESS_TYPE_IPV4) return { host: [...address].join('.'), addressType: 'ipv4' };
  if (addressType === ADDRESS_TYPE_IPV6) {
    const groups: string[] = [];
    for (let offset = 0; offset < 16; offset += 2) groups.push(address.readUInt16BE(offset).toString(16));
    return { host: groups.join(':'), addressType: 'ipv6' };
  }
  return { host: address.subarray(1).toString('latin1'), addressType: 'domain' };
}

/** A reply to the request: the bound address is not meaningful here, so it is 0.0.0.0:0. */
function replyBytes(code: number): Buffer {
  return Buffer.from([SOCKS5_VERSION, code, 0x00, ADDRESS_TYPE_IPV4, 0, 0, 0, 0, 0, 0]);
}
