import type { ErrorCode } from '../../proto/errors.js';
import { TrellisError } from '../../proto/errors.js';

export type NoRouteCode =
  /** The service has no healthy endpoint, or none could be dialled. */
  | 'TRELLIS_ERR_NO_ENDPOINT'
  /** Every endpoint is at its stream limit from this sidecar. */
  | 'TRELLIS_ERR_ENDPOINTS_FULL'
  /** The endpoint is in another zone and no published path through gateways reaches it now. */
  | 'TRELLIS_ERR_NO_ROUTE';

/** A connection that no endpoint of its service could take. */
export class NoRouteError extends TrellisError {
  override readonly name = 'NoRouteError';
  constructor(
    code: NoRouteCode,
    message: string,
    /** The wire code the refusal is counted under in the stream-error metrics. */
    readonly wireCode: ErrorCode,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}
