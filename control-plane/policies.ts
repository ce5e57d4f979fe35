/**
 * Authorization policy as config entries: a mesh-wide default and allow/deny rules per
 * (source, destination) pair. Sidecars enforce it; the control plane only stores and pushes it.
 */
import type { PoliciesView, PolicyAction, PolicyDefaultValue, PolicyRuleValue } from '../proto/control.js';
import { ControlErrorCode, POLICY_DEFAULT_KEY, POLICY_RULE_KEY_PREFIX, policyRuleKey } from '../proto/control.js';
import { ValidationError } from '../proto/errors.js';
import type { ConfigState } from './config-state.js';
import { ApiError } from './errors.js';

/** Reads and changes the policy entries of the config. */
export class PolicyService {
  readonly #config: ConfigState;

  constructor(config: ConfigState) {
    this.#config = config;
  }

  /** The default action and every rule, sorted by source then destination. */
  view(): PoliciesView {
    const defaultValue = this.#config.get(POLICY_DEFAULT_KEY) as PolicyDefaultValue | undefined;
    const rules = this.#config
      .list(POLICY_RULE_KEY_PREFIX)
      .map(([, value]) => value as PolicyRuleValue)
      .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
    return { defaultAction: defaultValue?.action ?? 'allow', rules, version: this.#config.version };
  }

  /**
   * Sets the default; with `closeExisting` (deny only) open streams it now denies are reset too.
   * @throws ValidationError `TRELLIS_ERR_INVALID` for `closeExisting` with allow.
   */
  async setDefault(action: PolicyAction, closeExisting = false): Promise<PoliciesView> {
    await this.#config.apply([[POLICY_DEFAULT_KEY, { action, ...closeExistingFlag(action, closeExisting) }]]);
    return this.view();
  }

  /**
   * Adds or replaces the rule for `rule.from` → `rule.to`; see {@link setDefault} for `closeExisting`.
   * @throws ValidationError `TRELLIS_ERR_INVALID` for `closeExisting` with allow.
   */
  async putRule(rule: PolicyRuleValue): Promise<PoliciesView> {
    const value: PolicyRuleValue = { from: rule.from, to: rule.to, action: rule.action, ...closeExistingFlag(rule.action, rule.closeExisting ?? false) };
    await this.#config.apply([[policyRuleKey(rule.from, rule.to), value]]);
    return this.view();
  }

  /** @throws ApiError `TRELLIS_ERR_NOT_FOUND` (404) when there is no such rule. */
  async deleteRule(from: string, to: string): Promise<PoliciesView> {
    const key = policyRuleKey(from, to);
    if (this.#config.get(key) === undefined) {
      throw new ApiError(ControlErrorCode.NOT_FOUND, `no policy rule from ${from} to ${to}`, 404);
    }
    await this.#config.apply([[key, null]]);
    return this.view();
  }
}

/** The flag as stored: present only when set, so that entries without it compare equal to older ones. */
function closeExistingFlag(action: PolicyAction, closeExisting: boolean): { closeExisting?: true } {
  if (!closeExisting) return {};
  if (action !== 'deny') throw new ValidationError('closeExisting goes with deny only: an allow closes nothing');
  return { closeExisting: true };
}
