/** The outcome of a policy rule. */
export type PolicyAction = 'allow' | 'deny';

/** One rule: callers of service `from` (or `*`, any service) reaching service `to`. */
export interface PolicyRule {
  from: string;
  to: string;
  action: PolicyAction;
}

/**
 * Authorization at the destination: a rule naming the caller exactly wins over a `*` rule,
 * which wins over the mesh-wide default.
 */
export class AuthorizationPolicy {
  readonly #rules = new Map<string, PolicyAction>();

  constructor(
    readonly defaultAction: PolicyAction,
    rules: Iterable<PolicyRule>,
  ) {
    for (const rule of rules) this.#rules.set(ruleKey(rule.from, rule.to), rule.action);
  }

  /** Whether a caller of service `from` may open a stream to service `to`. */
  allows(from: string, to: string): boolean {
    const action = this.#rules.get(ruleKey(from, to)) ?? this.#rules.get(ruleKey('*', to)) ?? this.defaultAction;
    return action === 'allow';
  }
}

function ruleKey(from: string, to: string): string {
  // Service names cannot hold spaces, so this join is unambiguous.
  return `${from} ${to}`;
}
