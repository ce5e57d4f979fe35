/**
 * Target `csr`: readCsr, the CA's PKCS#10 reader, on a valid sidecar request mutated as DER
 * bytes (lengths that lie, cut elements, changed tags) and on mutated PEM text around it.
 *
 * Properties: only ApiError `TRELLIS_ERR_BAD_CSR`; an accepted request carries an RSA key of at
 * least 2048 bits or an EC P-256 or P-384 key; a request whose signed bytes changed is never accepted.
 */
import fc from 'fast-check';
import { MIN_RSA_KEY_BITS, readCsr } from '../../../control-plane/csr-reader.js';
import { ApiError } from '../../../control-plane/errors.js';
import { applyByteMutations, byteMutationArbitrary } from '../bytes.js';
import { defineTarget, ensure, expectTyped, fromBase64, jsonObject, toBase64 } from '../fuzz-target.js';
import type { ErrorContract, SeedInput } from '../fuzz-target.js';
import { mutateText, textMutations } from '../text.js';

export interface CsrInput {
  /** PEM text as a join or renewal would carry it. */
  text: string;
}

const CONTRACT: ErrorContract = { errorClass: ApiError, codes: new Set(['TRELLIS_ERR_BAD_CSR']) };

/** A request written by the sidecar's own writer (`createCsrPemFor`) for a key made once for this target. */
const BASE_CSR = Buffer.from(
  'MIICVDCCATwCAQAwDzENMAsGA1UEAwwEZnV6ejCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAKedYkROLl+bwh69BbBQB9JTpAJiEzFb5AGP+MOjPNuvLgel/NKIQjv3Z+cknE+UTLINJhh64yQF49MgH+ulztCerekmLB+IdHD+qw7NNXvNDHi2hlbU741NFujycAVXS0gNx0wI7wbwqFykDcZdmYyVl8HxjnYOaEUUAISAN4paz8sAkRpGkZkuc1gAnUXG56KNCWRqtpl5ePLWP5/2qFLGDEXhsiNNfqvMKtwIvIExfq/Y58WGMUwXlNSDYzwp22WruFwLuLeUS/V1w0FLD+8aDnpebHOUJIxAJxDTx9Xv+D6B6mawmH1waAAPoMU81jWSNGB5b9QM8snb+IC22bMCAwEAAaAAMA0GCSqGSIb3DQEBCwUAA4IBAQCXFF1tyEWGDcQ3nJcaRyp+BklVWE/DSYAxFs0uHR7JpwNwUxR3g1WZc5lIYrrNZSMRLBykz8M5Pvbz6xi7tSXYZzNwsGWjSrde6wPzivqKf5+/jm/AbhFxO6wdJBuwThBfEuTXuxa7KApKRSW2lRNnBml0iQtlGyb4rEjJ5Zx16BUNicnIHc75zqgH3JTnGJeWo8FFjwDTQ1451w0MWThqAYnFVBskecd1zMFNmJ6WU0dP4KG8diJQusoXg5APb9gFgN+FvThzKtbHH/MvddRpo0gOXzpUepwy/XcMBxgV5JklIPDATNQTCH71ig1r+JvP9baMLQLRcl9NVn5Qp2bw',
  'base64',
);

function pemOf(der: Uint8Array, label = 'CERTIFICATE REQUEST'): string {
  const lines = Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

const arbitrary = fc
  .record({
    byteMutations: fc.array(byteMutationArbitrary, { minLength: 0, maxLength: 4 }),
    textMutations: fc.oneof({ weight: 4, arbitrary: fc.constant([]) }, { weight: 1, arbitrary: textMutations }),
  })
  .map(({ byteMutations, textMutations: mutations }) => [{ text: mutateText(pemOf(applyByteMutations(BASE_CSR, byteMutations)), mutations) }]);

function check(input: CsrInput): void {
  const read = expectTyped(CONTRACT, 'readCsr', () => readCsr(input.text));
  if (!read.ok) return;
  const { keyName } = read.value;
  const rsaBits = /^rsa-(\d+)$/.exec(keyName)?.[1];
  ensure(rsaBits === undefined ? keyName === 'ec-prime256v1' || keyName === 'ec-secp384r1' : Number(rsaBits) >= MIN_RSA_KEY_BITS, () => `accepted a key ${keyName}`);
  // The base's signature covers its request info: changed bytes there must not verify.
  const der = Buffer.from(input.text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const infoLength = 4 + BASE_CSR.readUInt16BE(6);
  ensure(der.subarray(4, 4 + infoLength).equals(BASE_CSR.subarray(4, 4 + infoLength)), () => 'accepted a request whose signed bytes changed');
}

function seeds(): SeedInput<CsrInput>[] {
  const seed = (name: string, note: string, text: string): SeedInput<CsrInput> => ({ name, note, input: { text } });
  const withLength = (length: number[]): Buffer => Buffer.concat([Buffer.from([0x30, ...length]), BASE_CSR.subarray(4)]);
  return [
    seed('valid', 'the valid base request', pemOf(BASE_CSR)),
    seed('crlf', 'the valid base request with CRLF line ends', pemOf(BASE_CSR).replaceAll('\n', '\r\n')),
    seed('indefinite-length', 'the outer SEQUENCE with an indefinite (BER) length', pemOf(Buffer.concat([withLength([0x80]), Buffer.from([0, 0])]))),
    seed('long-length', 'the outer length in five bytes', pemOf(withLength([0x85, 0, 0, 0, 0x02, 0x54]))),
    seed('huge-length', 'an outer length of 4 GiB − 1', pemOf(withLength([0x84, 0xff, 0xff, 0xff, 0xff]))),
    seed('certificate-label', 'the request under a CERTIFICATE label', pemOf(BASE_CSR, 'CERTIFICATE')),
    seed('empty', 'an empty PEM block', pemOf(new Uint8Array(0))),
    seed('truncated', 'the request without its last byte', pemOf(BASE_CSR.subarray(0, BASE_CSR.length - 1))),
  ];
}

export const csrTarget = defineTarget<CsrInput>({
  name: 'csr',
  summary: 'readCsr over mutated PKCS#10 requests',
  arbitrary,
  check,
  toJson: (input) => ({ text: toBase64(Buffer.from(input.text, 'utf8')) }),
  fromJson: (json) => ({ text: fromBase64(jsonObject(json, 'csr input').text, 'csr text').toString('utf8') }),
  seeds,
});
