import { TrellisError } from '../../../proto/errors.js';

/** Why a proxy handshake ended without a connection. Stable: tests and logs match on these. */
export type ProxyErrorCode =
  /** Bytes that break SOCKS5 or HTTP framing. */
  | 'TRELLIS_ERR_PROXY_BAD_REQUEST'
  /** A SOCKS5 client offered no method this proxy speaks (only "no authentication"). */
  | 'TRELLIS_ERR_PROXY_NO_ACCEPTABLE_METHOD'
  /** A SOCKS5 command other than CONNECT (BIND, UDP ASSOCIATE). */
  | 'TRELLIS_ERR_PROXY_UNSUPPORTED_COMMAND'
  /** A SOCKS5 address type outside RFC 1928. */
  | 'TRELLIS_ERR_PROXY_UNSUPPORTED_ADDRESS_TYPE'
  /** An HTTP version other than 1.0 and 1.1. */
  | 'TRELLIS_ERR_PROXY_UNSUPPORTED_VERSION'
  /** An HTTP request head larger than the limit. */
  | 'TRELLIS_ERR_PROXY_HEAD_TOO_LARGE'
  /** The destination is not `<service>.mesh`: refused, never dialled. */
  | 'TRELLIS_ERR_PROXY_NOT_MESH'
  /** The client did not finish its handshake in time. */
  | 'TRELLIS_ERR_PROXY_TIMEOUT'
  /** The service has no endpoint this sidecar could reach. */
  | 'TRELLIS_ERR_PROXY_NO_ROUTE';

/** A proxy handshake that failed; the proxy tells the client in its protocol, then closes. */
export class ProxyError extends TrellisError {
  override readonly name = 'ProxyError';
  constructor(
    override readonly code: ProxyErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}
