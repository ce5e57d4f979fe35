/**
 * Target `link-url`: parseLinkUrl on valid link addresses (`HOST:PORT`, `tls://`, `wss://`
 * with and without a path; names, IPv4 and bracketed IPv6) mutated as text.
 *
 * Properties: only ValidationError `TRELLIS_ERR_BAD_ADDRESS`; an accepted URL has a port in
 * 0..65535 and formats to a URL that parses back to the same value.
 */
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { ValidationError } from '../../../proto/errors.js';
import { formatLinkUrl, parseLinkUrl } from '../../../sidecar/links/link-url.js';
import { defineTarget, ensure, expectTyped, jsonObject, oneByOne } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { mutateText, textMutations } from '../text.js';
import { hostPort, linkUrl } from '../values.js';

export interface LinkUrlInput {
  text: string;
}

const CONTRACT: ErrorContract = { errorClass: ValidationError, codes: new Set(['TRELLIS_ERR_BAD_ADDRESS']) };

const arbitrary = fc
  .record({
    text: fc.oneof(linkUrl, hostPort, fc.constantFrom('wss://h:1', 'tls://[::1]:0', 'WSS://h:1', 'ws://h:80', 'wss://h:1/a/../b', 'wss://[::ffff:1.2.3.4]:443/')),
    mutations: textMutations,
  })
  .map(({ text, mutations }) => ({ text: mutateText(text, mutations) }));

function check(input: LinkUrlInput): void {
  const parsed = expectTyped(CONTRACT, 'parseLinkUrl', () => parseLinkUrl(input.text));
  if (!parsed.ok) return;
  const url = parsed.value;
  ensure(Number.isInteger(url.port) && url.port >= 0 && url.port <= 65535, () => `port ${url.port}`);
  ensure(url.scheme === 'tls' ? url.path === undefined : typeof url.path === 'string' && url.path.startsWith('/'), () => `scheme ${url.scheme} with path ${String(url.path)}`);
  const formatted = formatLinkUrl(url);
  const again = expectTyped(CONTRACT, 'parseLinkUrl of formatLinkUrl', () => parseLinkUrl(formatted));
  ensure(again.ok && isDeepStrictEqual(again.value, url), () => `${JSON.stringify(input.text)} formats to ${JSON.stringify(formatted)}, which parses to something else`);
}

function seeds(): SeedInput<LinkUrlInput>[] {
  const seed = (name: string, note: string, text: string): SeedInput<LinkUrlInput> => ({ name, note, input: { text } });
  return [
    seed('bare-host-port', 'version-1 HOST:PORT', '10.0.0.1:7400'),
    seed('wss-default-path', 'wss without a path (the default path is filled in)', 'wss://gw.example:443'),
    seed('wss-path-201', 'a WebSocket path of 201 characters after the slash (the limit is 200)', `wss://h:443/${'a'.repeat(201)}`),
    seed('tls-with-path', 'a path on a TLS URL', 'tls://h:443/x'),
    seed('ipv6-zone', 'a bracketed IPv6 address with a zone id', 'tls://[fe80::1%eth0]:7400'),
    seed('brackets-not-ipv6', 'brackets around something that is not IPv6', 'tls://[example.com]:7400'),
    seed('port-65536', 'port 65536', 'tls://h:65536'),
    seed('port-6-digits', 'a port of six digits', 'h:000080'),
    seed('uppercase-scheme', 'WSS in capitals: not a scheme, so HOST:PORT, which it is not', 'WSS://h:443'),
    seed('host-with-space', 'a bare host holding a space and a slash', 'a b/c:80'),
    seed('empty', 'the empty string', ''),
  ];
}

export const linkUrlTarget = defineTarget<LinkUrlInput>({
  name: 'link-url',
  summary: 'parseLinkUrl over mutated link addresses',
  arbitrary: oneByOne(arbitrary),
  check,
  toJson: (input) => ({ text: input.text }),
  fromJson: (json) => {
    const fields = jsonObject(json, 'link-url input');
    if (typeof fields.text !== 'string') throw new Error('text is not a string');
    return { text: fields.text };
  },
  seeds,
});
