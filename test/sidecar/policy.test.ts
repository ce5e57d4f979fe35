import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthorizationPolicy } from '../../sidecar/policy/index.js';

describe('AuthorizationPolicy', () => {
  it('uses the default when no rule matches', () => {
    assert.equal(new AuthorizationPolicy('allow', []).allows('a', 'b'), true);
    assert.equal(new AuthorizationPolicy('deny', []).allows('a', 'b'), false);
  });

  it('prefers an exact rule over a wildcard rule over the default', () => {
    const policy = new AuthorizationPolicy('allow', [
      { from: '*', to: 'db', action: 'deny' },
      { from: 'api', to: 'db', action: 'allow' },
    ]);
    assert.equal(policy.allows('api', 'db'), true);
    assert.equal(policy.allows('web', 'db'), false);
    assert.equal(policy.allows('web', 'api'), true);
  });
});
