export { AuthorizationPolicy } from './policy.js';
export type { PolicyAction, PolicyDecision, PolicyRule } from './policy.js';
