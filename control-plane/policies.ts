/**
 * Authorization policy as config entries: a mesh-wide default and allow/deny rules per
 * (source, destination) pair. Sidecars enforce it; the control plane only stores and pushes it.
 */
import type { PoliciesView, PolicyAction, PolicyDefaultValue, PolicyRuleValue } from '../proto/control.js';
import { ControlErrorCode, POLICY_DEFAULT_KEY, POLICY_RULE_KEY_PREFIX, policyRuleKey } from '../proto/control.js';
import type { ConfigState } from './config-state.js';
import { ApiError } from './errors.js';

/** Reads and changes the policy entries of the config. */
export class PolicyService {
  constructor(private readonly config: ConfigState) {}

  /** The default action and every rule, sorted by source then destination. */
  view(): PoliciesView {
    const defaultValue = this.config.get(POLICY_DEFAULT_KEY) as PolicyDefaultValue | undefined;
    const rules = this.config
      .list(POLICY_RULE_KEY_PREFIX)
      .map(([, value]) => value as PolicyRuleValue)
      .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
    return { defaultAction: defaultValue?.action ?? 'allow', rules, version: this.config.version };
  }

  async setDefault(action: PolicyAction): Promise<PoliciesView> {
    await this.config.apply([[POLICY_DEFAULT_KEY, { action }]]);
    return this.view();
  }

  /** Adds or replaces the rule for `rule.from` → `rule.to`. */
  async putRule(rule: PolicyRuleValue): Promise<PoliciesView> {
    await this.config.apply([[policyRuleKey(rule.from, rule.to), { from: rule.from, to: rule.to, action: rule.action }]]);
    return this.view();
  }

  /** @throws ApiError `TRELLIS_ERR_NOT_FOUND` (404) when there is no such rule. */
  async deleteRule(from: string, to: string): Promise<PoliciesView> {
    const key = policyRuleKey(from, to);
    if (this.config.get(key) === undefined) {
      throw new ApiError(ControlErrorCode.NOT_FOUND, `no policy rule from ${from} to ${to}`, 404);
    }
    await this.config.apply([[key, null]]);
    return this.view();
  }
}
