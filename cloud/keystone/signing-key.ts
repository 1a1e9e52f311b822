/**
 * The token signing key: an Ed25519 private key in PKCS#8 PEM under the key directory, mode 0600, created by
 * whichever process opens Keystone first and reused by every later one, so all worker processes validate
 * each other's tokens (Keystone's JWS provider keeps its keys in a key repository the same way).
 */
import { chmodSync, linkSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { CloudError } from '../errors';

export const SIGNING_KEY_FILE = 'jws-private.pem';

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}

/**
 * Creates the key file (mode 0600) with `content()` if it is missing; a concurrent creator in another
 * process wins or loses atomically.
 */
export function createKeyFileIfMissing(file: string, content: () => string): void {
  try {
    statSync(file);
    return;
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  const pem = content();
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
  try {
    // link() fails with EEXIST if another process got there first: then everybody uses that one.
    linkSync(tmp, file);
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
  } finally {
    unlinkSync(tmp);
  }
}

export function loadOrCreateSigningKey(keyDir: string): KeyObject {
  mkdirSync(keyDir, { recursive: true, mode: 0o700 });
  const file = path.join(keyDir, SIGNING_KEY_FILE);
  createKeyFileIfMissing(file, () =>
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  // A private key readable by group or others is tightened rather than trusted as is.
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  return parseSigningKey(readFileSync(file, 'utf8'), file);
}

export function parseSigningKey(key: KeyObject | string, where = 'signingKey'): KeyObject {
  let parsed: KeyObject;
  try {
    parsed = typeof key === 'string' ? createPrivateKey(key) : key;
  } catch {
    throw new CloudError('BadRequest', `The token signing key in ${where} is not a readable private key`);
  }
  if (parsed.type !== 'private' || parsed.asymmetricKeyType !== 'ed25519') {
    throw new CloudError('BadRequest', `The token signing key in ${where} must be an Ed25519 private key`);
  }
  return parsed;
}
