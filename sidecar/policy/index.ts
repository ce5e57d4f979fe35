export { AuthorizationPolicy } from './policy.js';
export type { PolicyAction, PolicyRule } from './policy.js';
