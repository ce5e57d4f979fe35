/**
 * Human-readable messages of RESET and GOAWAY frames, cut to what the peer's decoder accepts.
 */

import { Limits } from '../../proto/index.js';

/**
 * `message` cut to at most {@link Limits.MAX_MESSAGE_BYTES} UTF-8 bytes, at a character
 * boundary: a longer message would make the encoder refuse the whole frame.
 */
export function wireMessage(message: string): string {
  // A UTF-16 unit takes at most 3 UTF-8 bytes: short strings need no counting.
  if (message.length * 3 <= Limits.MAX_MESSAGE_BYTES) return message;
  const bytes = Buffer.from(message, 'utf8');
  if (bytes.length <= Limits.MAX_MESSAGE_BYTES) return message;
  let end = Limits.MAX_MESSAGE_BYTES;
  // Step back over continuation bytes (10xxxxxx) so no character is split.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}
