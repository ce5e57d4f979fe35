/**
 * Drives the proxy port's handshakes without a socket, exactly as `handleProxyConnection`
 * does: the first byte picks SOCKS5 (0x05), SOCKS4 (0x04, refused) or HTTP; chunks are pushed
 * until a request or an error; then the destination goes through the mesh-name check, and
 * the reply the client would get is built.
 */
import { HttpProxyHandshake, MAX_HTTP_HEAD_BYTES, MAX_SOCKS5_REQUEST_BYTES, meshServiceOf, ProxyError, Socks5Handshake } from '../../sidecar/forward/proxy/index.js';
import type { ProxyHandshake, ProxyRequest } from '../../sidecar/forward/proxy/index.js';
import { checkTyped, ensure, FuzzFailure } from './fuzz-target.js';
import type { ErrorContract } from './fuzz-target.js';

/** What a handshake may throw on client bytes: timeouts and routes come from elsewhere. */
const HANDSHAKE_CONTRACT: ErrorContract = {
  errorClass: ProxyError,
  codes: new Set([
    'TRELLIS_ERR_PROXY_BAD_REQUEST',
    'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD',
    'TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND',
    'TRELLIS_ERR_PROXY_UNSUPPORTED_ADDRESS_TYPE',
    'TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION',
    'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE',
  ]),
};
const MESH_NAME_CONTRACT: ErrorContract = { errorClass: ProxyError, codes: new Set(['TRELLIS_ERR_PROXY_NOT_MESH']) };

const SOCKS4_VERSION = 0x04;
const SOCKS5_VERSION = 0x05;

export type ProxyOutcome = 'socks4-refused' | 'incomplete' | 'refused' | 'not-mesh' | 'mesh';

/** Feeds `chunks` as the proxy connection would. @throws FuzzFailure when a property breaks. */
export function driveProxyConnection(chunks: readonly Buffer[]): ProxyOutcome {
  let handshake: ProxyHandshake | undefined;
  let fed = Buffer.alloc(0);
  for (const chunk of chunks) {
    if (chunk.length === 0) continue; // a socket never emits an empty 'data'
    if (handshake === undefined) {
      if (chunk[0] === SOCKS4_VERSION) return 'socks4-refused';
      handshake = chunk[0] === SOCKS5_VERSION ? new Socks5Handshake() : new HttpProxyHandshake();
    }
    fed = Buffer.concat([fed, chunk]);
    let request: ProxyRequest | undefined;
    try {
      const step = handshake.push(chunk);
      if (step.reply !== undefined) ensure(Buffer.isBuffer(step.reply), () => 'a reply that is not a Buffer');
      request = step.request;
    } catch (error) {
      checkTyped(HANDSHAKE_CONTRACT, `${handshake.protocol} handshake push`, error);
      checkFailureReply(handshake, error as ProxyError);
      return 'refused';
    }
    checkBuffered(handshake);
    if (request !== undefined) return dispatch(handshake, request, fed);
  }
  return 'incomplete';
}

function checkBuffered(handshake: ProxyHandshake): void {
  // SOCKS5 holds less than one message; HTTP at most its head limit.
  const bound = handshake.protocol === 'socks5' ? MAX_SOCKS5_REQUEST_BYTES : MAX_HTTP_HEAD_BYTES;
  const buffered = handshake.bufferedBytes;
  if (!(buffered >= 0 && buffered <= bound)) throw new FuzzFailure('unbounded-buffer', `${handshake.protocol} handshake holds ${buffered} bytes > ${bound}`);
}

function checkFailureReply(handshake: ProxyHandshake, error: ProxyError): void {
  let reply: Buffer | undefined;
  try {
    reply = handshake.failureReply(error);
  } catch (cause) {
    throw new FuzzFailure('untyped-error', `failureReply threw for ${error.code}`, { cause });
  }
  ensure(reply === undefined || Buffer.isBuffer(reply), () => 'failureReply returned something that is not a Buffer');
}

function dispatch(handshake: ProxyHandshake, request: ProxyRequest, fed: Buffer): ProxyOutcome {
  const { target, initialBytes } = request;
  ensure(Number.isInteger(target.port) && target.port >= 0 && target.port <= 65535, () => `target port ${target.port}`);
  ensure(typeof target.host === 'string' && ['domain', 'ipv4', 'ipv6'].includes(target.addressType), () => `target ${JSON.stringify(target)}`);
  // What follows the handshake is passed on untouched: a suffix of what was read (plain HTTP
  // requests prepend their rewritten head, so only tunnels are held to it).
  const tunnel = handshake.protocol === 'socks5' || handshake.successReply() !== undefined;
  if (tunnel) {
    ensure(initialBytes.length <= fed.length && fed.subarray(fed.length - initialBytes.length).equals(initialBytes), () => 'initialBytes are not the bytes after the handshake');
  }
  try {
    meshServiceOf(target.host);
  } catch (error) {
    checkTyped(MESH_NAME_CONTRACT, 'meshServiceOf', error);
    checkFailureReply(handshake, error as ProxyError);
    return 'not-mesh';
  }
  return 'mesh';
}
