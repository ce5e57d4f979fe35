/**
 * The store's errors: one class per condition, each a {@link StoreError} (so existing
 * `instanceof StoreError` checks keep working) with its own stable code. Their `name` stays
 * `StoreError` (the base class fixes it); tell them apart by class or code.
 */
import { ControlErrorCode } from '../../proto/control.js';
import { StoreError } from '../errors.js';

export { StoreError };

/** Codes of the errors a {@link Store} throws. */
export const StoreErrorCode = {
  /** An operation failed or was refused (bad input, a backend error, a corrupt value). */
  STORE: ControlErrorCode.STORE,
  /** The backend cannot be reached now; the operation may be retried. */
  UNAVAILABLE: 'TRELLIS_ERR_STORE_UNAVAILABLE',
  /** A watch's revision is older than the history kept: list again, then watch. */
  COMPACTED: 'TRELLIS_ERR_STORE_COMPACTED',
  /** The store was used after close. */
  CLOSED: 'TRELLIS_ERR_STORE_CLOSED',
  /** The lease expired or was revoked. */
  LEASE_LOST: 'TRELLIS_ERR_STORE_LEASE_LOST',
  /** The file store's journal is damaged before its last record, or does not follow its snapshot. */
  CORRUPT: 'TRELLIS_ERR_STORE_CORRUPT',
} as const;
export type StoreErrorCode = (typeof StoreErrorCode)[keyof typeof StoreErrorCode];

/** The backend (etcd) cannot be reached, or did not answer in time. */
export class StoreUnavailableError extends StoreError {
  override readonly code = StoreErrorCode.UNAVAILABLE;
}

/** A watch cannot resume: the revision it needs was compacted away. */
export class StoreCompactedError extends StoreError {
  override readonly code = StoreErrorCode.COMPACTED;
  constructor(
    /** The revision the watch needed to resume after. */
    readonly fromRevision: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The store is closed. */
export class StoreClosedError extends StoreError {
  override readonly code = StoreErrorCode.CLOSED;
}

/** The lease expired or was revoked: its keys are gone (or going). */
export class StoreLeaseLostError extends StoreError {
  override readonly code = StoreErrorCode.LEASE_LOST;
}

/**
 * The file store's journal cannot be replayed: a damaged record before the last one (a torn
 * last record is the normal trace of a crash and is dropped instead), or records that do not
 * follow the snapshot. Refused rather than guessed at: acknowledged writes would be lost.
 */
export class StoreCorruptError extends StoreError {
  override readonly code = StoreErrorCode.CORRUPT;
  constructor(
    /** The damaged file. */
    readonly path: string,
    /** Byte offset of the first record that cannot be used. */
    readonly offset: number,
    message: string,
  ) {
    super(`${path}: ${message} (at byte ${offset})`);
  }
}
