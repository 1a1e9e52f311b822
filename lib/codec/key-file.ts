/**
 * Where the payload-encryption keys live: BOOTFLOW_CODEC_KEYS in the environment (`id:base64key,...`, newest
 * last) or `$BOOTFLOW_DATA/codec-keys.json`, created by the bootstrap with mode 0600. A key file that the group or
 * others can read is refused, as ssh refuses a private key with loose permissions.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { z } from 'zod';
import { KEY_BYTES, Keyring, KeyringError, decodeBase64Key, parseKeyList } from './keyring';

export const KEY_FILE_NAME = 'codec-keys.json';
export const KEYS_ENV = 'BOOTFLOW_CODEC_KEYS';

const keyFileSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(z.strictObject({ id: z.string(), key: z.string(), createdAt: z.string() })).min(1),
});
type KeyFile = z.infer<typeof keyFileSchema>;

export function codecKeyFilePath(dataDir: string): string {
  return path.join(path.resolve(dataDir), KEY_FILE_NAME);
}

/** A fresh key entry; the id carries the date so an operator can tell keys apart in histories. */
function newKeyEntry(now: Date): KeyFile['keys'][number] {
  const day = now.toISOString().slice(0, 10).replaceAll('-', '');
  return {
    id: `bootflow-${day}-${randomBytes(4).toString('hex')}`,
    key: randomBytes(KEY_BYTES).toString('base64'),
    createdAt: now.toISOString(),
  };
}

/** Reads and checks a key file through one file descriptor, so the mode checked is the file's that is read. */
function readKeyFile(file: string): KeyFile {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new KeyringError(
        `No payload-encryption key: ${file} does not exist and ${KEYS_ENV} is not set. ` +
          `Run the bootstrap (npm start) or call ensureCodecKeyFile(dataDir) to create one.`,
      );
    }
    throw err;
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new KeyringError(`${file} is not a regular file`);
    if (process.platform !== 'win32') {
      if ((stat.mode & 0o077) !== 0) {
        const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
        throw new KeyringError(
          `${file} has mode ${mode}: the group or others can access the encryption keys. ` +
            `Run \`chmod 600 ${file}\` and start again.`,
        );
      }
      if (typeof process.getuid === 'function' && stat.uid !== process.getuid()) {
        throw new KeyringError(`${file} belongs to another user (uid ${stat.uid}); refusing to use it`);
      }
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(fd, 'utf8'));
    } catch {
      throw new KeyringError(`${file} is not valid JSON`);
    }
    const result = keyFileSchema.safeParse(parsed);
    // Only the paths of the problems, never the values: they may be keys.
    if (!result.success) {
      const where = result.error.issues.map((issue) => issue.path.join('.') || '(root)').join(', ');
      throw new KeyringError(`${file} is not a bootflow key file (problem at ${where})`);
    }
    return result.data;
  } finally {
    closeSync(fd);
  }
}

function keyringFromFile(file: string, content: KeyFile): Keyring {
  const keys = content.keys.map(({ id, key }) => ({
    id,
    key: decodeBase64Key(key, `${file}: key '${id}'`),
  }));
  return new Keyring(keys, file);
}

/** Writes a new 0600 file next to `target` and returns its path; the caller links or renames it into place. */
function writePrivateTemp(target: string, content: KeyFile): string {
  const temp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(content, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temp;
}

export function loadCodecKeyFile(dataDir: string): Keyring {
  const file = codecKeyFilePath(dataDir);
  return keyringFromFile(file, readKeyFile(file));
}

/**
 * Creates `$dataDir/codec-keys.json` with one new key and mode 0600 if it does not exist, then loads it. Safe when
 * several processes start at once: the file appears complete or not at all (a hard link is created atomically).
 */
export function ensureCodecKeyFile(
  dataDir: string,
  now: Date = new Date(),
): { path: string; keyring: Keyring; created: boolean } {
  const file = codecKeyFilePath(dataDir);
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = writePrivateTemp(file, { version: 1, keys: [newKeyEntry(now)] });
  let created = true;
  try {
    linkSync(temp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    created = false;
  } finally {
    rmSync(temp, { force: true });
  }
  return { path: file, keyring: loadCodecKeyFile(dataDir), created };
}

/**
 * Appends a new key to the key file; it becomes the key new payloads use, while the old ones keep decrypting
 * existing histories. Running workers and clients pick it up when they restart. Returns the new key id.
 */
export async function rotateCodecKey(dataDir: string, now: Date = new Date()): Promise<string> {
  const file = codecKeyFilePath(dataDir);
  readKeyFile(file); // clear errors (missing file, loose mode) before taking the lock
  const release = await lockfile.lock(file, { retries: { retries: 20, minTimeout: 50, maxTimeout: 500 } });
  try {
    const content = readKeyFile(file);
    const entry = newKeyEntry(now);
    const next: KeyFile = { version: 1, keys: [...content.keys, entry] };
    keyringFromFile(file, next); // validate before replacing the file
    renameSync(writePrivateTemp(file, next), file);
    return entry.id;
  } finally {
    await release();
  }
}

/**
 * The keyring every worker, client, test and the codec server use: BOOTFLOW_CODEC_KEYS when it is set (a bad
 * value is an error, never a silent fall-back to the file), else the key file in the data directory.
 */
export function loadKeyring(options: { env?: NodeJS.ProcessEnv; dataDir?: string } = {}): Keyring {
  const env = options.env ?? process.env;
  const fromEnv = env[KEYS_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return parseKeyList(fromEnv, KEYS_ENV);
  }
  return loadCodecKeyFile(options.dataDir ?? env.BOOTFLOW_DATA ?? 'data');
}
