/**
 * Structure-aware generation for JSON and msgpack inputs: valid values of the control-plane
 * schemas, and mutations of decoded values (a field dropped, retyped or pushed to an extreme,
 * a container nested deeper) that keep the input well-formed so the schema code is reached.
 */
import fc from 'fast-check';
import type { ConfigValue } from '../../proto/control.js';

export const serviceName = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
export const sidecarId = fc.oneof(fc.stringMatching(/^sc-[0-9a-f]{12}$/), fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/));
export const gatewayKey = fc.tuple(serviceName, serviceName).map(([zone, name]) => `${zone}/${name}`);
const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`), fc.constantFrom('localhost', '127.0.0.1', '[::1]'));
const port = fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(0, 1, 65535, 65536, 99999));
export const hostPort = fc.tuple(host, port).map(([h, p]) => `${h}:${p}`);
const wsPath = fc.option(fc.stringMatching(/^\/[A-Za-z0-9._~/-]{0,30}$/), { nil: '' });
export const linkUrl = fc.oneof(
  hostPort.map((address) => `tls://${address}`),
  fc.tuple(hostPort, wsPath).map(([address, path]) => `wss://${address}${path}`),
);

/** A valid `[key, value]` config entry of every kind parseConfigEntry knows. */
export const configEntryArbitrary: fc.Arbitrary<[string, ConfigValue]> = fc.oneof(
  fc
    .record({
      sidecarId,
      service: serviceName,
      address: fc.oneof(hostPort, linkUrl),
      zone: fc.stringMatching(/^[A-Za-z0-9._-]{0,63}$/),
      weight: fc.integer({ min: 1, max: 1000 }),
      healthy: fc.boolean(),
    })
    .map((value): [string, ConfigValue] => [`endpoint/${value.service}/${value.sidecarId}`, value]),
  fc.constantFrom('allow' as const, 'deny' as const).map((action): [string, ConfigValue] => ['policy/default', { action }]),
  fc
    .record({ from: fc.oneof(fc.constant('*'), serviceName), to: serviceName, action: fc.constantFrom('allow' as const, 'deny' as const) })
    .map((value): [string, ConfigValue] => [`policy/rule/${value.from}/${value.to}`, value]),
  fc
    .record({ zone: serviceName, name: serviceName, gatewayId: sidecarId, addresses: fc.array(linkUrl, { maxLength: 8 }), links: fc.array(gatewayKey, { maxLength: 6 }) })
    .map((value): [string, ConfigValue] => [`gateway/${value.zone}/${value.name}`, value]),
  fc
    .record({ from: serviceName, to: serviceName, paths: fc.array(fc.uniqueArray(gatewayKey, { minLength: 1, maxLength: 4 }), { maxLength: 16 }) })
    .map((value): [string, ConfigValue] => [`route/${value.from}/${value.to}`, value]),
);

/** Values a field should be tried with: other types, edges of number ranges, odd strings. */
export const hostileScalar: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null, undefined, true, false, 0, -0, -1, 1.5, 1000, 1001, 2 ** 31, 2 ** 53, 2 ** 53 + 2, -(2 ** 63), Number.MAX_SAFE_INTEGER + 1,
    Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, '', '*', '__proto__', 'constructor', 'a'.repeat(5000),
    'allow', 'deny', 'register', 'snapshot', 'delta', '\u0000', '\ud800', 'é', '../..', 'x/y/z', '[]', '{}',
  ),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }),
);

export type ValueMutation =
  | { kind: 'drop'; at: number }
  | { kind: 'replace'; at: number; value: unknown }
  | { kind: 'add'; key: string; value: unknown }
  | { kind: 'wrap'; at: number; depth: number }
  | { kind: 'nest'; depth: number }
  | { kind: 'element'; at: number; value: unknown };

export const valueMutationArbitrary: fc.Arbitrary<ValueMutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('replace' as const), at: fc.nat(), value: hostileScalar }) },
  fc.record({ kind: fc.constant('add' as const), key: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor', 'type', 'version')), value: hostileScalar }),
  fc.record({ kind: fc.constant('wrap' as const), at: fc.nat(), depth: fc.integer({ min: 1, max: 3 }) }),
  fc.record({ kind: fc.constant('nest' as const), depth: fc.oneof(fc.integer({ min: 1, max: 50 }), fc.constant(1000)) }),
  fc.record({ kind: fc.constant('element' as const), at: fc.nat(), value: hostileScalar }),
);

/**
 * Applies a mutation to a plain object, reaching one level into nested objects and arrays: a
 * field of the value (or of one of its fields) dropped, retyped, wrapped in arrays, an
 * element of an array replaced. The value is copied, never changed in place.
 */
export function mutateValue(value: unknown, mutation: ValueMutation): unknown {
  if (mutation.kind === 'nest') {
    let nested: unknown = value;
    for (let level = 0; level < mutation.depth; level += 1) nested = [nested];
    return nested;
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return mutation.kind === 'element' ? [mutation.value] : value;
    const copy = [...(value as unknown[])];
    const at = ('at' in mutation ? mutation.at : 0) % copy.length;
    if (mutation.kind === 'drop') copy.splice(at, 1);
    else if (mutation.kind === 'element' || mutation.kind === 'replace') copy[at] = mutation.value;
    else if (mutation.kind === 'wrap') copy[at] = mutateValue(copy[at], { kind: 'nest', depth: mutation.depth });
    else copy.push(mutation.value);
    return copy;
  }
  if (typeof value !== 'object' || value === null) return mutation.kind === 'replace' ? mutation.value : value;
  const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  if (mutation.kind === 'add') {
    Object.defineProperty(copy, mutation.key, { value: mutation.value, enumerable: true, configurable: true, writable: true });
    return copy;
  }
  const keys = Object.keys(copy);
  if (keys.length === 0) return copy;
  // Even positions act on a field, odd ones one level deeper in it.
  const key = keys[Math.floor(mutation.at / 2) % keys.length]!;
  if (mutation.at % 2 === 1 && typeof copy[key] === 'object' && copy[key] !== null) {
    copy[key] = mutateValue(copy[key], { ...mutation, at: Math.floor(mutation.at / 2 / keys.length) });
    return copy;
  }
  if (mutation.kind === 'drop') delete copy[key];
  else if (mutation.kind === 'replace') copy[key] = mutation.value;
  else if (mutation.kind === 'wrap') copy[key] = mutateValue(copy[key], { kind: 'nest', depth: mutation.depth });
  else copy[key] = mutateValue(copy[key], mutation);
  return copy;
}

export function mutateValueAll(value: unknown, mutations: readonly ValueMutation[]): unknown {
  return mutations.reduce<unknown>((current, mutation) => mutateValue(current, mutation), value);
}
