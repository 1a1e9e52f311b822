/**
 * The credential encryption key (Keystone's fernet credential key repository, reduced to one key): 32
 * random bytes, base64, in `credential.key` under the key directory, mode 0600, created by the first process
 * and shared by every later one. Credential blobs are stored AES-256-GCM encrypted with it, so the keystone
 * database alone never yields a credential's secret.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CloudError } from '../errors';
import { createKeyFileIfMissing } from './signing-key';

export const CREDENTIAL_KEY_FILE = 'credential.key';

export class CredentialKey {
  /** A SHA-256 prefix of the key: Keystone's key_hash, naming which key encrypted a blob. */
  readonly hash: string;

  private constructor(private readonly key: Buffer) {
    this.hash = createHash('sha256').update(key).digest('hex').slice(0, 64);
  }

  static fromBytes(key: Buffer): CredentialKey {
    if (key.length !== 32) throw new CloudError('BadRequest', 'The credential key must be 32 bytes');
    return new CredentialKey(Buffer.from(key));
  }

  static loadOrCreate(keyDir: string): CredentialKey {
    mkdirSync(keyDir, { recursive: true, mode: 0o700 });
    const file = path.join(keyDir, CREDENTIAL_KEY_FILE);
    createKeyFileIfMissing(file, () => `${randomBytes(32).toString('base64')}\n`);
    if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) throw new CloudError('BadRequest', `${file} does not hold a 32-byte key`);
    return new CredentialKey(key);
  }

  encrypt(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return ['v1', iv, cipher.getAuthTag(), data]
      .map((p) => (typeof p === 'string' ? p : p.toString('base64url')))
      .join('.');
  }

  /** The blob, or a CloudError (never the ciphertext or the key in its message). */
  decrypt(sealed: string, keyHash: string): string {
    const [version, iv, tag, data] = sealed.split('.');
    if (keyHash !== this.hash || version !== 'v1' || !iv || !tag || data === undefined)
      throw new Error('A credential was encrypted with another credential key');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new Error('A credential could not be decrypted with the credential key');
    }
  }
}
