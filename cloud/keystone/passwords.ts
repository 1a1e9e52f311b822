/**
 * Password hashing with scrypt (memory-hard, in Node's crypto). Each hash is a PHC-style string that carries
 * its own salt and cost parameters, so raising the cost later still verifies older hashes:
 * `$scrypt$ln=14,r=8,p=1$<salt base64>$<key base64>`. Comparison is constant-time.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { CloudError } from '../errors';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. Memory used is 128 · N · r bytes (ln 14, r 8 → 16 MiB). */
  logN: number;
  r: number;
  p: number;
}

/** Django's scrypt defaults; about 0.1–0.3 s per hash on a small machine, like Keystone's bcrypt rounds. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { logN: 14, r: 8, p: 1 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Bounds on parameters read back from a stored hash, so a bad row cannot make one login eat the machine.
const LIMITS = { logN: [10, 20], r: [1, 32], p: [1, 16], key: [16, 64] } as const;
const HASH_FORMAT = /^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function within(value: number, [min, max]: readonly [number, number]): boolean {
  return Number.isInteger(value) && value >= min && value <= max;
}

export function checkScryptParams(params: ScryptParams): void {
  if (!within(params.logN, LIMITS.logN) || !within(params.r, LIMITS.r) || !within(params.p, LIMITS.p)) {
    throw new CloudError('BadRequest', 'scrypt parameters out of range (ln 10–20, r 1–32, p 1–16)');
  }
}

function deriveKey(password: string, salt: Buffer, keyBytes: number, params: ScryptParams): Promise<Buffer> {
  const N = 2 ** params.logN;
  return new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      keyBytes,
      { N, r: params.r, p: params.p, maxmem: 256 * N * params.r },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}

const b64 = (buf: Buffer): string => buf.toString('base64').replace(/=+$/, '');

export async function hashPassword(
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  checkScryptParams(params);
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(password, salt, KEY_BYTES, params);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${b64(salt)}$${b64(key)}`;
}

/** True when password matches the stored hash; false for a mismatch or a malformed/out-of-range hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = HASH_FORMAT.exec(stored);
  if (!m) return false;
  const params: ScryptParams = { logN: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  const salt = Buffer.from(m[4] ?? '', 'base64');
  const expected = Buffer.from(m[5] ?? '', 'base64');
  if (!within(params.logN, LIMITS.logN) || !within(params.r, LIMITS.r) || !within(params.p, LIMITS.p))
    return false;
  if (!within(expected.length, LIMITS.key) || salt.length < 8) return false;
  const actual = await deriveKey(password, salt, expected.length, params);
  return timingSafeEqual(actual, expected);
}
