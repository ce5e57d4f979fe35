// The key file of replicas on etcd, and the sealing of the secrets they share through it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SecretBox } from '../../control-plane/secret-box.js';
import { ControlErrorCode } from '../../proto/control.js';

const refused = { code: ControlErrorCode.ENCRYPTION_KEY };

describe('SecretBox', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'trellis-key-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function keyFile(name: string, text: string, mode = 0o600): Promise<string> {
    const path = join(dir, name);
    await writeFile(path, text);
    await chmod(path, mode);
    return path;
  }

  it('reads a key of 64 hex digits or base64 from a file of mode 0600', async () => {
    const key = randomBytes(32);
    const hex = await SecretBox.fromKeyFile(await keyFile('hex.key', `${key.toString('hex')}\n`));
    const base64 = await SecretBox.fromKeyFile(await keyFile('b64.key', key.toString('base64')));
    assert.equal(base64.open('secrets/x', hex.seal('secrets/x', 'the CA key')), 'the CA key');
  });

  it('refuses a key file that is missing, not a regular file, readable by group or others, or malformed', async () => {
    const key = randomBytes(32).toString('hex');
    await assert.rejects(SecretBox.fromKeyFile(join(dir, 'absent.key')), refused);
    const directory = join(dir, 'a-directory');
    await mkdir(directory, { mode: 0o700 });
    await assert.rejects(SecretBox.fromKeyFile(directory), refused);
    for (const mode of [0o640, 0o604, 0o644]) await assert.rejects(SecretBox.fromKeyFile(await keyFile(`mode-${mode.toString(8)}.key`, key, mode)), refused, mode.toString(8));
    for (const [name, text] of [
      ['short.key', key.slice(2)],
      ['empty.key', ''],
      ['long.key', randomBytes(33).toString('base64')],
      ['text.key', 'correct horse battery staple'],
    ] as const) {
      await assert.rejects(SecretBox.fromKeyFile(await keyFile(name, text)), refused, name);
    }
  });

  it('seals so that no plaintext is stored, and opens only with the same key at the same store key', () => {
    const key = randomBytes(32);
    const box = new SecretBox(key);
    const sealed = box.seal('secrets/ca', 'PRIVATE KEY body');
    assert.ok(!JSON.stringify(sealed).includes('PRIVATE KEY'));
    assert.notDeepEqual(box.seal('secrets/ca', 'PRIVATE KEY body'), sealed, 'a fresh nonce every time');
    assert.equal(new SecretBox(Buffer.from(key)).open('secrets/ca', sealed), 'PRIVATE KEY body');
    assert.throws(() => new SecretBox(randomBytes(32)).open('secrets/ca', sealed), refused);
    assert.throws(() => box.open('secrets/admin', sealed), refused, 'moved to another store key');
    const altered = { ...(sealed as Record<string, string>), ciphertext: Buffer.from('x'.repeat(16)).toString('base64') };
    assert.throws(() => box.open('secrets/ca', altered), refused);
    assert.throws(() => box.open('secrets/ca', 'plaintext'), refused);
  });
});
