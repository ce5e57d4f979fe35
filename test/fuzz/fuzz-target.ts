/**
 * What a fuzz target is: a generator of inputs for one parser of outside input, the property
 * every input must keep, and how an input is written to and read from a corpus file.
 */
import type fc from 'fast-check';
import { TrellisError } from '../../proto/errors.js';

/** A value that survives `JSON.stringify` and `JSON.parse` unchanged. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** How a property broke; the runner prints it and names the corpus file after the input. */
export type FuzzFailureKind = 'untyped-error' | 'unstable-code' | 'unbounded-buffer' | 'slow-input' | 'property';

/** A broken property. Anything else a check throws is a bug in the check itself. */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
  constructor(
    readonly kind: FuzzFailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${kind}: ${message}`, options);
  }
}

/** A hand-made input kept in the corpus, with why it is interesting. */
export interface SeedInput<Input> {
  /** File name stem, `[a-z0-9-]+`. */
  name: string;
  note: string;
  input: Input;
}

export interface FuzzTarget<Input> {
  /** `[a-z0-9-]+`: the `--target` name and the corpus directory. */
  readonly name: string;
  readonly summary: string;
  /**
   * Groups of inputs: variants that share one costly generated base (a frame stream) are
   * generated together, so fast-check's generation is paid once for several inputs.
   */
  readonly arbitrary: fc.Arbitrary<readonly Input[]>;
  /** @throws FuzzFailure when `input` breaks the property. */
  check(input: Input): void;
  /** The input as JSON for a corpus file (bytes as base64). */
  toJson(input: Input): JsonValue;
  /** The inverse of {@link FuzzTarget.toJson}. @throws Error for JSON of another shape. */
  fromJson(json: unknown): Input;
  seeds(): SeedInput<Input>[];
}

/** A target with its input type erased, so that targets of all kinds fit in one list. */
export type AnyFuzzTarget = FuzzTarget<unknown>;

/** Inputs one at a time, as groups of one. */
export function oneByOne<Input>(arbitrary: fc.Arbitrary<Input>): fc.Arbitrary<readonly Input[]> {
  return arbitrary.map((input) => [input]);
}

export function defineTarget<Input>(target: FuzzTarget<Input>): AnyFuzzTarget {
  return target;
}

/** Which errors a parser may throw: one class and a closed set of stable codes. */
export interface ErrorContract {
  // Error classes take constructor arguments of their own; only instanceof matters here.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
  errorClass: Function & { prototype: TrellisError };
  codes: ReadonlySet<string>;
}

/**
 * Runs `parse` and returns its result, or `undefined` when it threw an error the contract
 * allows. @throws FuzzFailure for any other exception.
 */
export function expectTyped<T>(contract: ErrorContract, what: string, parse: () => T): { ok: true; value: T } | { ok: false; error: TrellisError } {
  try {
    return { ok: true, value: parse() };
  } catch (error) {
    checkTyped(contract, what, error);
    return { ok: false, error };
  }
}

/** @throws FuzzFailure unless `error` is of the contract's class with one of its codes. */
export function checkTyped(contract: ErrorContract, what: string, error: unknown): asserts error is TrellisError {
  if (error instanceof FuzzFailure) throw error;
  if (!(error instanceof contract.errorClass) || !(error instanceof TrellisError)) {
    throw new FuzzFailure('untyped-error', `${what} threw ${describeError(error)}`, { cause: error });
  }
  if (!contract.codes.has(error.code) || typeof error.message !== 'string' || error.message === '') {
    throw new FuzzFailure('unstable-code', `${what} threw ${error.name} with code ${JSON.stringify(error.code)}`, { cause: error });
  }
}

/** @throws FuzzFailure `property` unless `condition` holds. */
export function ensure(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new FuzzFailure('property', message());
}

export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `a non-Error value ${String(error)}`;
}

export function toBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

export function fromBase64(value: unknown, what: string): Buffer {
  if (typeof value !== 'string') throw new Error(`${what} is not a base64 string`);
  return Buffer.from(value, 'base64');
}

/** The object fields of a corpus input. @throws Error when `json` is not an object. */
export function jsonObject(json: unknown, what: string): Record<string, unknown> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${what} is not a JSON object`);
  return json as Record<string, unknown>;
}
