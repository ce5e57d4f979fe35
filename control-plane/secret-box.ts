/**
 * Encryption of the secrets a shared store holds (the CA's private key, the admin token): AES-256-GCM
 * with a key that every replica reads from a file of its own (`--etcd-encryption-key-file`).
 * The store key a secret lives at is bound in as associated data, so a ciphertext moved to
 * another key does not decrypt. Whoever can read the store but not the key file learns nothing.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { ControlErrorCode } from '../proto/control.js';
import { TrellisError } from '../proto/errors.js';
import type { StoreValue } from './store/store.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const ALGORITHM = 'aes-256-gcm';

/** The key file is missing, readable by others, malformed, or not the key the secrets were sealed with. */
export class EncryptionKeyError extends TrellisError {
  override readonly name = 'EncryptionKeyError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(ControlErrorCode.ENCRYPTION_KEY, message, options);
  }
}

/** Seals and opens secrets with one key. Create with {@link SecretBox.fromKeyFile}. */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== KEY_BYTES) throw new EncryptionKeyError(`an encryption key has ${KEY_BYTES} bytes, not ${key.length}`);
    this.#key = key;
  }

  /**
   * Reads a key file: 64 hex digits (as `openssl rand -hex 32` writes), or 32 bytes of base64.
   * @throws EncryptionKeyError unless the file exists, is a regular file of mode 0600 or
   *   stricter (no access for group or others), and holds a key.
   */
  static async fromKeyFile(path: string): Promise<SecretBox> {
    let text: string;
    try {
      const info = await stat(path);
      if (!info.isFile()) throw new EncryptionKeyError(`${path}: the encryption key file is not a regular file`);
      if ((info.mode & 0o077) !== 0) {
        throw new EncryptionKeyError(`${path}: the encryption key file has mode ${(info.mode & 0o777).toString(8).padStart(4, '0')}; it must be 0600 (chmod 600 ${path})`);
      }
      text = (await readFile(path, 'utf8')).trim();
    } catch (err) {
      if (err instanceof EncryptionKeyError) throw err;
      throw new EncryptionKeyError(`${path}: cannot read the encryption key file: ${(err as Error).message}`, { cause: err });
    }
    const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== KEY_BYTES || (!/^[0-9a-fA-F]{64}$/.test(text) && key.toString('base64') !== text)) {
      throw new EncryptionKeyError(`${path}: the encryption key file must hold 32 bytes as 64 hex digits (openssl rand -hex 32) or as base64`);
    }
    return new SecretBox(key);
  }

  /** Encrypts `plaintext` for storage at store key `storeKey`. */
  seal(storeKey: string, plaintext: string): StoreValue {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#key, nonce);
    cipher.setAAD(Buffer.from(storeKey));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { alg: ALGORITHM, nonce: nonce.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
  }

  /**
   * Decrypts what {@link seal} stored at `storeKey`.
   * @throws EncryptionKeyError when the value was sealed with another key (or altered).
   */
  open(storeKey: string, sealed: StoreValue | undefined): string {
    if (!isSealed(sealed)) throw new EncryptionKeyError(`the stored secret ${storeKey} is not an encrypted value`);
    try {
      const decipher = createDecipheriv(ALGORITHM, this.#key, Buffer.from(sealed.nonce, 'base64'));
      decipher.setAAD(Buffer.from(storeKey));
      decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
      return Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new EncryptionKeyError(`the encryption key does not open the stored secret ${storeKey}: this replica's key file differs from the one the secrets were sealed with`, { cause: err });
    }
  }
}

function isSealed(value: StoreValue | undefined): value is { alg: string; nonce: string; ciphertext: string; tag: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return value.alg === ALGORITHM && typeof value.nonce === 'string' && typeof value.ciphertext === 'string' && typeof value.tag === 'string';
}
