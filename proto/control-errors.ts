/** The control plane's error codes: one registry, used by the REST API, the channel and the CLI. */

/** Stable codes of control-plane errors, in REST error bodies and `error` messages. */
export const ControlErrorCode = {
  /** Input failed validation (the message says which field). */
  INVALID: 'TRELLIS_ERR_INVALID',
  /** A token string is malformed. */
  BAD_TOKEN: 'TRELLIS_ERR_BAD_TOKEN',
  /** The token's id is unknown or its secret is wrong. */
  TOKEN_UNKNOWN: 'TRELLIS_ERR_TOKEN_UNKNOWN',
  /** The join token has expired. */
  TOKEN_EXPIRED: 'TRELLIS_ERR_TOKEN_EXPIRED',
  /** The join token was issued for another service. */
  TOKEN_WRONG_SERVICE: 'TRELLIS_ERR_TOKEN_WRONG_SERVICE',
  /** A gateway token used to join as a sidecar, or a service token used to start a gateway. */
  TOKEN_WRONG_KIND: 'TRELLIS_ERR_TOKEN_WRONG_KIND',
  /** A single-use join token that already let someone join. */
  TOKEN_USED: 'TRELLIS_ERR_TOKEN_USED',
  /** The join token was revoked by an operator. */
  TOKEN_REVOKED: 'TRELLIS_ERR_TOKEN_REVOKED',
  /** Too many failed join attempts from this source address; try again later. */
  RATE_LIMITED: 'TRELLIS_ERR_RATE_LIMITED',
  /** The CSR cannot be parsed, its signature is bad, or its key is too weak. */
  BAD_CSR: 'TRELLIS_ERR_BAD_CSR',
  /** An admin route was called without a valid admin token. */
  UNAUTHORIZED: 'TRELLIS_ERR_UNAUTHORIZED',
  NOT_FOUND: 'TRELLIS_ERR_NOT_FOUND',
  METHOD_NOT_ALLOWED: 'TRELLIS_ERR_METHOD_NOT_ALLOWED',
  BODY_TOO_LARGE: 'TRELLIS_ERR_BODY_TOO_LARGE',
  /** A CA rotation was asked for while one has not completed. */
  CA_ROTATION_IN_PROGRESS: 'TRELLIS_ERR_CA_ROTATION_IN_PROGRESS',
  /** A sidecar sent a message other than `register` first. */
  NOT_REGISTERED: 'TRELLIS_ERR_NOT_REGISTERED',
  /** A `subscribe` would take the session beyond {@link MAX_SUBSCRIPTIONS} services. */
  SUBSCRIPTION_LIMIT: 'TRELLIS_ERR_SUBSCRIPTION_LIMIT',
  /** The control plane's data directory or one of its files is unusable. */
  DATA_DIR: 'TRELLIS_ERR_DATA_DIR',
  /** The control plane cannot listen on the address it was given. */
  LISTEN: 'TRELLIS_ERR_LISTEN',
  /** The store failed or was used after close. */
  STORE: 'TRELLIS_ERR_STORE',
  /** The etcd encryption key file is missing, readable by others, malformed, or not the key the stored secrets were sealed with. */
  ENCRYPTION_KEY: 'TRELLIS_ERR_ENCRYPTION_KEY',
  /** A dashboard change without the session's CSRF token. */
  CSRF: 'TRELLIS_ERR_CSRF',
  /** The certificate, sidecar or service was revoked: its channel, renewals and joins are refused. */
  REVOKED: 'TRELLIS_ERR_REVOKED',
  INTERNAL: 'TRELLIS_ERR_INTERNAL',
} as const;
export type ControlErrorCode = (typeof ControlErrorCode)[keyof typeof ControlErrorCode];
