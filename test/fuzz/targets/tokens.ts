/**
 * Target `tokens`: parseJoinToken, parseGatewayToken and parseAdminToken on valid tokens of
 * every kind, mutated as JSON values, as JSON text, as base64url text and as whole tokens,
 * each fed to every parser.
 *
 * Properties: only ValidationError `TRELLIS_ERR_BAD_TOKEN` (or `TRELLIS_ERR_TOKEN_WRONG_KIND`
 * from the join and gateway parsers); an accepted token encodes and parses back to itself.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ValidationError } from '../../../proto/errors.js';
import {
  ADMIN_TOKEN_PREFIX,
  encodeAdminToken,
  encodeGatewayToken,
  encodeJoinToken,
  GATEWAY_TOKEN_PREFIX,
  JOIN_TOKEN_PREFIX,
  parseAdminToken,
  parseGatewayToken,
  parseJoinToken,
} from '../../../proto/tokens.js';
import { defineTarget, ensure, expectTyped, jsonObject } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { mutateText, textMutations } from '../text.js';
import { mutateValueAll, serviceName, valueMutationArbitrary } from '../values.js';

type Parser = 'join' | 'gateway' | 'admin';

export interface TokenInput {
  parser: Parser;
  text: string;
}

const PARSERS: Record<Parser, { parse: (text: string) => object; encode: (token: never) => string; contract: ErrorContract }> = {
  join: { parse: parseJoinToken, encode: encodeJoinToken, contract: { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_BAD_TOKEN', 'TRELLIS_ERR_TOKEN_WRONG_KIND']) } },
  gateway: { parse: parseGatewayToken, encode: encodeGatewayToken, contract: { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_BAD_TOKEN', 'TRELLIS_ERR_TOKEN_WRONG_KIND']) } },
  admin: { parse: parseAdminToken, encode: encodeAdminToken, contract: { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_BAD_TOKEN']) } },
};
const PARSER_NAMES = Object.keys(PARSERS) as Parser[];

const common = {
  id: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/),
  secret: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((bytes) => Buffer.from(bytes).toString('base64url')),
  caFingerprint: fc.stringMatching(/^[0-9a-f]{64}$/),
  trustDomain: fc.oneof(fc.constant('trellis.local'), fc.string({ minLength: 1, maxLength: 40 })),
};
const expiresAt = fc.oneof(fc.nat(), fc.constantFrom(0, Number.MAX_SAFE_INTEGER));
const tokenBody = fc.oneof(
  fc.record({ ...common, service: serviceName, expiresAt }).map((body) => ({ prefix: JOIN_TOKEN_PREFIX, body })),
  fc.record({ ...common, zone: serviceName, gateway: serviceName, expiresAt }).map((body) => ({ prefix: GATEWAY_TOKEN_PREFIX, body })),
  fc.record(common).map((body) => ({ prefix: ADMIN_TOKEN_PREFIX, body })),
);

const arbitrary: fc.Arbitrary<readonly TokenInput[]> = fc
  .record({
    token: tokenBody,
    valueMutations: fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: fc.array(valueMutationArbitrary, { minLength: 1, maxLength: 3 }) }),
    jsonMutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
    base64Mutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
    prefix: fc.option(fc.constantFrom(JOIN_TOKEN_PREFIX, GATEWAY_TOKEN_PREFIX, ADMIN_TOKEN_PREFIX, 'trellis-join-v2.', 'trellis-join-v1', '', ' trellis-gateway-v1.'), { freq: 5 }),
    tokenMutations: fc.oneof({ weight: 3, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
    padding: fc.constantFrom('', '', '', '\n', '  \t', '='),
  })
  .map(({ token, valueMutations, jsonMutations, base64Mutations, prefix, tokenMutations, padding }) => {
    const body = jsonText(mutateValueAll(token.body, valueMutations));
    const json = mutateText(body ?? 'null', jsonMutations);
    const payload = mutateText(Buffer.from(json, 'utf8').toString('base64url'), base64Mutations);
    const text = mutateText(`${prefix ?? token.prefix}${payload}`, tokenMutations) + padding;
    return PARSER_NAMES.map((parser) => ({ parser, text }));
  });

function check(input: TokenInput): void {
  const { parse, encode, contract } = PARSERS[input.parser];
  const first = expectTyped(contract, `parse ${input.parser} token`, () => parse(input.text));
  if (!first.ok) return;
  const again = expectTyped(contract, `parse re-encoded ${input.parser} token`, () => parse(encode(first.value as never)));
  ensure(again.ok && isDeepStrictEqual(again.value, first.value), () => `a ${input.parser} token does not survive encode/parse`);
}

function seeds(): SeedInput<TokenInput>[] {
  const body = { id: 'abc', secret: 'A'.repeat(43), caFingerprint: '0'.repeat(64), trustDomain: 'trellis.local' };
  const b64 = (value: string) => Buffer.from(value, 'utf8').toString('base64url');
  const seed = (name: string, note: string, parser: Parser, text: string): SeedInput<TokenInput> => ({ name, note, input: { parser, text } });
  return [
    seed('join-valid', 'a valid join token with a trailing newline (from a file)', 'join', `${encodeJoinToken({ ...body, service: 'api', expiresAt: 1 })}\n`),
    seed('join-given-gateway', 'a gateway token given to the join parser: WRONG_KIND', 'join', encodeGatewayToken({ ...body, zone: 'eu', gateway: 'g1', expiresAt: 1 })),
    seed('gateway-given-join', 'a join token given to the gateway parser: WRONG_KIND', 'gateway', encodeJoinToken({ ...body, service: 'api', expiresAt: 1 })),
    seed('admin-padded-base64', 'base64 with "=" padding, outside the base64url alphabet', 'admin', `${ADMIN_TOKEN_PREFIX}${b64(JSON.stringify(body))}==`),
    seed('admin-json-array', 'a payload that is a JSON array', 'admin', `${ADMIN_TOKEN_PREFIX}${b64('[1,2,3]')}`),
    seed('admin-json-null', 'a payload that is JSON null', 'admin', `${ADMIN_TOKEN_PREFIX}${b64('null')}`),
    seed('admin-proto-key', 'a payload with a __proto__ key holding every field', 'admin', `${ADMIN_TOKEN_PREFIX}${b64(`{"__proto__":${JSON.stringify(body)}}`)}`),
    seed('join-expires-float', 'expiresAt 1.5 and a lone surrogate in trustDomain', 'join', `${JOIN_TOKEN_PREFIX}${b64(JSON.stringify({ ...body, trustDomain: '\ud800', service: 'api', expiresAt: 1.5 }))}`),
    seed('join-4097-chars', 'a token of 4097 characters (the limit is 4096)', 'join', `${JOIN_TOKEN_PREFIX}${'A'.repeat(4097 - JOIN_TOKEN_PREFIX.length)}`),
    seed('join-deep-json', 'a payload of 5000 nested JSON arrays', 'join', `${JOIN_TOKEN_PREFIX}${b64('['.repeat(5000) + ']'.repeat(5000))}`),
    seed('join-invalid-utf8', 'a payload whose bytes are not UTF-8', 'join', `${JOIN_TOKEN_PREFIX}${Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('base64url')}`),
  ];
}

export const tokensTarget = defineTarget<TokenInput>({
  name: 'tokens',
  summary: 'parseJoinToken / parseGatewayToken / parseAdminToken over mutated tokens',
  arbitrary,
  check,
  toJson: (input) => ({ parser: input.parser, text: input.text }),
  fromJson: (json) => {
    const fields = jsonObject(json, 'tokens input');
    if (!PARSER_NAMES.includes(fields.parser as Parser) || typeof fields.text !== 'string') throw new Error('not { parser, text }');
    return { parser: fields.parser as Parser, text: fields.text };
  },
  seeds,
});

/**
 * The value as JSON text. JSON has no bigint: one is written as the integer literal it stands
 * for. Mutations can nest a value deeper than JSON.stringify recurses; such a value becomes the
 * text of an over-deep array, which is what the parsers would meet (token texts are bounded, so
 * deeper nesting adds nothing).
 */
function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? Number(item) : item));
  } catch (error) {
    if (error instanceof RangeError) return '['.repeat(5000);
    throw error;
  }
}
