/**
 * Target `config-entry`: parseConfigEntry on valid entries of every kind with their values
 * mutated structurally (fields dropped, retyped, pushed to extremes, nested) and their keys
 * mutated as text. The value travels as msgpack, as it does in a snapshot or delta.
 *
 * Properties: only ValidationError `TRELLIS_ERR_INVALID`; an accepted entry parses again to
 * the same value.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { Packr, unpack } from 'msgpackr';
import { parseConfigEntry } from '../../../proto/control.js';
import { ValidationError } from '../../../proto/errors.js';
import { defineTarget, ensure, expectTyped, fromBase64, jsonObject, oneByOne, toBase64 } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { mutateText, textMutations } from '../text.js';
import { configEntryArbitrary, mutateValueAll, valueMutationArbitrary } from '../values.js';

export interface ConfigEntryInput {
  key: string;
  /** The value, msgpack-encoded. */
  value: Buffer;
}

const CONTRACT: ErrorContract = { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_INVALID']) };
const packr = new Packr({ useRecords: false });

/** msgpack of `value`, or of nil for what msgpack cannot hold (a bigint beyond 64 bits). */
export function packValue(value: unknown): Buffer {
  try {
    return packr.pack(value);
  } catch {
    return packr.pack(null);
  }
}

const arbitrary = fc
  .record({
    entry: configEntryArbitrary,
    keyMutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
    valueMutations: fc.array(valueMutationArbitrary, { maxLength: 4 }),
  })
  .map(({ entry: [key, value], keyMutations, valueMutations }) => ({ key: mutateText(key, keyMutations), value: packValue(mutateValueAll(value, valueMutations)) }));

function check(input: ConfigEntryInput): void {
  const value: unknown = unpack(input.value);
  const first = expectTyped(CONTRACT, 'parseConfigEntry', () => parseConfigEntry(input.key, value));
  if (!first.ok || first.value === undefined) return;
  const again = expectTyped(CONTRACT, 'parseConfigEntry of its own result', () => parseConfigEntry(input.key, first.value));
  ensure(again.ok && isDeepStrictEqual(again.value, first.value), () => `entry "${input.key}" does not parse again to the same value`);
}

function seeds(): SeedInput<ConfigEntryInput>[] {
  const endpoint = { sidecarId: 'sc-0123456789ab', service: 'api', address: 'wss://gw.example:443/trellis/v2/link', zone: 'eu', weight: 1000, healthy: true };
  const seed = (name: string, note: string, key: string, value: unknown): SeedInput<ConfigEntryInput> => ({ name, note, input: { key, value: packValue(value) } });
  return [
    seed('endpoint-valid', 'an endpoint with a wss address at weight 1000 (the maximum)', 'endpoint/api/sc-0123456789ab', endpoint),
    seed('endpoint-weight-1001', 'weight one over the maximum', 'endpoint/api/sc-0123456789ab', { ...endpoint, weight: 1001 }),
    seed('endpoint-key-mismatch', 'a valid value under the key of another sidecar', 'endpoint/api/sc-ffffffffffff', endpoint),
    seed('endpoint-port-65536', 'host:port with port 65536', 'endpoint/api/sc-0123456789ab', { ...endpoint, address: 'host:65536' }),
    seed('policy-rule-star', 'a rule from "*" (every caller)', 'policy/rule/*/api', { from: '*', to: 'api', action: 'deny' }),
    seed('policy-default-proto', 'policy/default with a __proto__ field beside its action', 'policy/default', JSON.parse('{"action":"allow","__proto__":{"action":"deny"}}') as unknown),
    seed('gateway-9-addresses', 'a gateway advertising 9 addresses (the limit is 8)', 'gateway/eu/g1', { zone: 'eu', name: 'g1', gatewayId: 'gw-1', addresses: Array.from({ length: 9 }, (_, i) => `tls://10.0.0.${i}:7400`), links: [] }),
    seed('route-5-hops', 'a route whose path has 5 gateways (MAX_TUNNEL_HOPS is 4)', 'route/a/e', { from: 'a', to: 'e', paths: [['a/g', 'b/g', 'c/g', 'd/g', 'e/g']] }),
    seed('route-nested-deep', 'a route whose paths field is 2000 nested arrays', 'route/a/b', { from: 'a', to: 'b', paths: JSON.parse('['.repeat(2000) + ']'.repeat(2000)) as unknown }),
    seed('unknown-kind', 'a kind this build does not know: dropped, not refused', 'service-mesh/future/thing', { anything: [1, 2, 3] }),
    seed('key-extra-slash', 'an endpoint key with a trailing slash', 'endpoint/api/sc-0123456789ab/', endpoint),
  ];
}

export const configEntryTarget = defineTarget<ConfigEntryInput>({
  name: 'config-entry',
  summary: 'parseConfigEntry over valid entries with mutated values and keys',
  arbitrary: oneByOne(arbitrary),
  check,
  toJson: (input) => ({ key: input.key, value: toBase64(input.value) }),
  fromJson: (json) => {
    const fields = jsonObject(json, 'config-entry input');
    if (typeof fields.key !== 'string') throw new Error('key is not a string');
    return { key: fields.key, value: fromBase64(fields.value, 'value') };
  },
  seeds,
});
