/**
 * Service names are DNS labels (lowercase letters, digits and '-', 1..63 characters): they
 * appear in `<service>.mesh` names, SPIFFE ids, OPEN frames and config keys.
 */
export const SERVICE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
