/**
 * The control plane's public surface: start one, and the store seam for other backends.
 */
export { startControlPlane } from './control-plane.js';
export type { ControlPlane, ControlPlaneInit } from './control-plane.js';
export { ApiError, DataDirError, StoreError } from './errors.js';
export { FileStore, JOURNAL_FILE_NAME, STATE_FILE_NAME } from './store/file-store.js';
export type { Store, StoreValue } from './store/store.js';
export { CA_CERT_FILE_NAME, CA_KEY_FILE_NAME, certificateFingerprint } from './ca.js';
export { ADMIN_TOKEN_FILE_NAME } from './token-service.js';
