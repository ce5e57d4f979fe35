/** The outcome of a policy rule. */
export type PolicyAction = 'allow' | 'deny';

/** What a rule or the default decides; `closeExisting` (with deny) applies it to open streams too. */
export interface PolicyDecision {
  action: PolicyAction;
  closeExisting?: boolean;
}

/** One rule: callers of service `from` (or `*`, any service) reaching service `to`. */
export interface PolicyRule extends PolicyDecision {
  from: string;
  to: string;
}

/**
 * Authorization at the destination: a rule naming the caller exactly wins over a `*` rule,
 * which wins over the mesh-wide default.
 */
export class AuthorizationPolicy {
  readonly #rules = new Map<string, PolicyDecision>();
  readonly #default: PolicyDecision;

  constructor(defaultDecision: PolicyAction | PolicyDecision, rules: Iterable<PolicyRule>) {
    this.#default = typeof defaultDecision === 'string' ? { action: defaultDecision } : defaultDecision;
    for (const rule of rules) this.#rules.set(ruleKey(rule.from, rule.to), { action: rule.action, closeExisting: rule.closeExisting });
  }

  get defaultAction(): PolicyAction {
    return this.#default.action;
  }

  /** The rule (or default) that decides whether a caller of service `from` may reach service `to`. */
  decide(from: string, to: string): PolicyDecision {
    return this.#rules.get(ruleKey(from, to)) ?? this.#rules.get(ruleKey('*', to)) ?? this.#default;
  }

  /** Whether a caller of service `from` may open a stream to service `to`. */
  allows(from: string, to: string): boolean {
    return this.decide(from, to).action === 'allow';
  }

  /** Whether an open stream from `from` to `to` must be reset: denied by a decision that closes existing streams. */
  closesOpen(from: string, to: string): boolean {
    const decision = this.decide(from, to);
    return decision.action === 'deny' && decision.closeExisting === true;
  }
}

function ruleKey(from: string, to: string): string {
  // Service names cannot hold spaces, so this join is unambiguous.
  return `${from} ${to}`;
}
