import assert from 'node:assert/strict';
import type { ProxyErrorCode } from '../../sidecar/forward/proxy/index.js';
import { ProxyError } from '../../sidecar/forward/proxy/index.js';

/** The code of the ProxyError `action` throws, or undefined when it throws nothing. */
export function proxyErrorCodeOf(action: () => unknown): ProxyErrorCode | undefined {
  try {
    action();
  } catch (error) {
    assert.ok(error instanceof ProxyError, `expected a ProxyError, got ${String(error)}`);
    return error.code;
  }
  return undefined;
}
