import { TrellisError } from '../../proto/errors.js';

/** Codes of {@link WorkerError}. */
export type WorkerErrorCode =
  /** A forwarding worker failed or exited before it listened: the sidecar does not start. */
  'TRELLIS_ERR_WORKER_START';

/** A forwarding worker of a sidecar could not do its part. */
export class WorkerError extends TrellisError {
  override readonly name = 'WorkerError';
  constructor(code: WorkerErrorCode, message: string) {
    super(code, message);
  }
}
