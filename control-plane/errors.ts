/**
 * Errors the control plane throws on purpose. Each carries a stable code from
 * `ControlErrorCode` and, where it answers a REST request, the HTTP status to answer with.
 */
import { TrellisError } from '../proto/errors.js';
import { ControlErrorCode } from '../proto/control.js';

/** A request the control plane refuses; `httpStatus` is what the REST API answers. */
export class ApiError extends TrellisError {
  override readonly name = 'ApiError';
  constructor(
    code: ControlErrorCode,
    message: string,
    readonly httpStatus: number,
  ) {
    super(code, message);
  }
}

/** The data directory, or a file in it, cannot be used. The message names the path. */
export class DataDirError extends TrellisError {
  override readonly name = 'DataDirError';
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(ControlErrorCode.DATA_DIR, `${path}: ${message}`, options);
  }
}

/** The store failed, or was used after close. */
export class StoreError extends TrellisError {
  override readonly name = 'StoreError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ControlErrorCode.STORE, message, options);
  }
}
