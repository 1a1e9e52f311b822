/**
 * A known value encrypted by the bootstrap with the deployment's key (`$BOOTFLOW_DATA/codec-check.json`, mode
 * 0600). Every worker, whatever its role, decrypts it at start: a process given the wrong key (a stale
 * BOOTFLOW_CODEC_KEYS, another deployment's key file) stops there with a clear message instead of running
 * and leaving its results undecryptable for the controller.
 */
import path from 'node:path';
import { z } from 'zod';
import { AesGcmPayloadCodec, PayloadDecryptionError } from './encryption-codec';
import { KeyringError, type Keyring } from './keyring';
import { createPrivateFile, readPrivateFile } from './private-file';

export const KEY_CHECK_FILE = 'codec-check.json';
const CHECK_TEXT = 'bootflow payload-encryption key check';

const checkFileSchema = z.strictObject({
  version: z.literal(1),
  keyId: z.string(),
  metadata: z.record(z.string(), z.string()),
  data: z.string(),
});

export function keyCheckPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), KEY_CHECK_FILE);
}

/** Writes the check value with the keyring's current key unless the file exists. */
export function ensureKeyCheck(dataDir: string, keyring: Keyring): string {
  const file = keyCheckPath(dataDir);
  const encrypted = new AesGcmPayloadCodec(keyring).encrypt({
    metadata: {},
    data: Buffer.from(CHECK_TEXT),
  });
  const content = {
    version: 1,
    keyId: keyring.currentId,
    metadata: Object.fromEntries(
      Object.entries(encrypted.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(encrypted.data ?? new Uint8Array()).toString('base64'),
  };
  createPrivateFile(file, `${JSON.stringify(content, null, 2)}\n`);
  return file;
}

/**
 * Decrypts the check value with `keyring`; throws a KeyringError naming the file and the key id when it
 * cannot. Returns false when the data directory has no check value (a remote host given only its keys).
 */
export function verifyKeyCheck(dataDir: string, keyring: Keyring): boolean {
  const file = keyCheckPath(dataDir);
  const text = readPrivateFile(file);
  if (text === undefined) return false;
  const parsed = checkFileSchema.safeParse(JSON.parse(text));
  if (!parsed.success) throw new KeyringError(`${file} is not a bootflow key check file`);
  const { keyId, metadata, data } = parsed.data;
  let plain: string;
  try {
    const [decoded] = [
      new AesGcmPayloadCodec(keyring).decrypt({
        metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(data, 'base64'),
      }),
    ];
    plain = Buffer.from(decoded?.data ?? new Uint8Array()).toString('utf8');
  } catch (err) {
    if (!(err instanceof PayloadDecryptionError)) throw err;
    plain = '';
  }
  if (plain !== CHECK_TEXT) {
    throw new KeyringError(
      `The payload-encryption keys loaded (${keyring.ids.join(', ')}) cannot decrypt this deployment's key ` +
        `check (${file}, key '${keyId}'): this process has the wrong key. Give it the deployment's ` +
        'codec-keys.json or BOOTFLOW_CODEC_KEYS.',
    );
  }
  return true;
}
