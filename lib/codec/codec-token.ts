/**
 * The codec server's access token: 32 random bytes (base64url) in `$BOOTFLOW_DATA/codec-token`, mode 0600,
 * made by the bootstrap. Whoever holds it may have payloads decrypted, so it is as secret as the keys;
 * BOOTFLOW_CODEC_TOKEN overrides the file (for a codec server on another machine).
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { KeyringError } from './keyring';
import { createPrivateFile, readPrivateFile } from './private-file';

export const CODEC_TOKEN_FILE = 'codec-token';
export const CODEC_TOKEN_ENV = 'BOOTFLOW_CODEC_TOKEN';

export function codecTokenPath(dataDir: string): string {
  return path.join(path.resolve(dataDir), CODEC_TOKEN_FILE);
}

/** Creates the token file if it is missing (idempotent); returns its path. */
export function ensureCodecToken(dataDir: string): string {
  const file = codecTokenPath(dataDir);
  createPrivateFile(file, `${randomBytes(32).toString('base64url')}\n`);
  return file;
}

/** BOOTFLOW_CODEC_TOKEN, else the data directory's token file; a clear error when neither exists. */
export function loadCodecToken(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env[CODEC_TOKEN_ENV]?.trim();
  if (fromEnv) return fromEnv;
  const file = codecTokenPath(dataDir);
  const token = readPrivateFile(file)?.trim();
  if (!token) {
    throw new KeyringError(
      `No codec server token: ${file} does not exist and ${CODEC_TOKEN_ENV} is not set. Run the bootstrap ` +
        '(npm start, or tsx scripts/bootstrap.ts) to create one.',
    );
  }
  return token;
}
