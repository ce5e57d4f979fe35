/** Every fuzz target, in the order the runner shares its time among them. */
import type { AnyFuzzTarget } from './fuzz-target.js';
import { configEntryTarget } from './targets/config-entry.js';
import { csrTarget } from './targets/csr.js';
import { frameDecoderTarget } from './targets/frame-decoder.js';
import { httpHandshakeTarget } from './targets/http-handshake.js';
import { linkUrlTarget } from './targets/link-url.js';
import { sidecarChannelTarget } from './targets/sidecar-channel.js';
import { socks5HandshakeTarget } from './targets/socks5-handshake.js';
import { tokensTarget } from './targets/tokens.js';

export const FUZZ_TARGETS: readonly AnyFuzzTarget[] = [
  frameDecoderTarget,
  sidecarChannelTarget,
  configEntryTarget,
  tokensTarget,
  socks5HandshakeTarget,
  httpHandshakeTarget,
  linkUrlTarget,
  csrTarget,
];
