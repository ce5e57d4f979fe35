/** HTTP plumbing of the REST API: bounded JSON bodies, JSON answers, errors as `{ error }`. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiErrorBody } from '../../proto/control.js';
import { ControlErrorCode, MAX_API_BODY_BYTES } from '../../proto/control.js';
import { TrellisError, ValidationError } from '../../proto/errors.js';
import { ApiError } from '../errors.js';

/**
 * Reads a JSON body of at most {@link MAX_API_BODY_BYTES}; an empty body reads as `{}`.
 * The declared length is checked before anything is buffered.
 * @throws ApiError `TRELLIS_ERR_BODY_TOO_LARGE` (413); ValidationError for malformed JSON.
 */
export async function readJsonBody(req: IncomingMessage, limitBytes = MAX_API_BODY_BYTES): Promise<unknown> {
  const tooLarge = (): ApiError => new ApiError(ControlErrorCode.BODY_TOO_LARGE, `request body exceeds ${limitBytes} bytes`, 413);
  if (Number(req.headers['content-length'] ?? 0) > limitBytes) throw tooLarge();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limitBytes) throw tooLarge();
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ValidationError(`request body is not JSON: ${(err as Error).message}`);
  }
}

/** Answers with a JSON body. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** The HTTP status and body for an error; `internal` is true for failures nobody meant to throw. */
export function errorAnswer(err: unknown): { status: number; body: ApiErrorBody; internal: boolean } {
  if (err instanceof ApiError) return { status: err.httpStatus, body: errorBody(err.code, err.message), internal: false };
  if (err instanceof ValidationError) return { status: 400, body: errorBody(err.code, err.message), internal: false };
  if (err instanceof TrellisError) return { status: 500, body: errorBody(err.code, err.message), internal: true };
  return { status: 500, body: errorBody(ControlErrorCode.INTERNAL, 'internal error'), internal: true };
}

function errorBody(code: string, message: string): ApiErrorBody {
  return { error: { code, message } };
}
