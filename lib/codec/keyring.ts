/**
 * The payload-encryption keyring: AES-256 keys by id, newest last. New payloads are encrypted with the newest key;
 * older keys stay so that histories written before a rotation still decrypt. Key material never leaves this object
 * through JSON, util.inspect or error messages, so logging a keyring by mistake shows only the ids.
 */
import { inspect } from 'node:util';

export const KEY_BYTES = 32;
const KEY_ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export class KeyringError extends Error {
  override name = 'KeyringError';
}

export interface CodecKey {
  id: string;
  key: Buffer;
}

export class Keyring {
  /** Key ids, oldest first. Own plain fields, so that a clone (as pino's redaction makes) still serializes. */
  readonly ids: readonly string[];
  /** The id new payloads are encrypted with (the newest key). */
  readonly currentId: string;
  readonly #keys: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly CodecKey[], source = 'keyring') {
    if (keys.length === 0) throw new KeyringError(`${source} holds no payload-encryption key`);
    const map = new Map<string, Buffer>();
    keys.forEach(({ id, key }, index) => {
      if (!KEY_ID_PATTERN.test(id)) {
        throw new KeyringError(
          `${source}: key ${index + 1} has an invalid id (1-64 characters of A-Z a-z 0-9 . _ -)`,
        );
      }
      if (key.length !== KEY_BYTES) {
        throw new KeyringError(
          `${source}: key '${id}' is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES}`,
        );
      }
      if (map.has(id)) throw new KeyringError(`${source}: key id '${id}' appears twice`);
      map.set(id, Buffer.from(key));
    });
    this.#keys = map;
    this.ids = Object.freeze([...map.keys()]);
    this.currentId = keys[keys.length - 1]!.id;
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** The key bytes for an id, or undefined; for the codec only. */
  keyFor(id: string): Buffer | undefined {
    return this.#keys.get(id);
  }

  toJSON(): { ids: readonly string[]; currentId: string } {
    return { ids: this.ids, currentId: this.currentId };
  }

  [inspect.custom](): string {
    return `Keyring { ids: [${this.ids.join(', ')}], currentId: ${this.currentId} }`;
  }
}

/**
 * Parses `id:base64key,id:base64key` (newest last), the format of BOOTFLOW_CODEC_KEYS. Errors name the entry and
 * its id, never the key text.
 */
export function parseKeyList(text: string, source = 'BOOTFLOW_CODEC_KEYS'): Keyring {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const keys = entries.map((entry, index) => {
    const colon = entry.indexOf(':');
    if (colon <= 0) {
      throw new KeyringError(`${source}: entry ${index + 1} is not of the form id:base64key`);
    }
    const id = entry.slice(0, colon);
    return { id, key: decodeBase64Key(entry.slice(colon + 1), `${source}: key '${id}'`) };
  });
  return new Keyring(keys, source);
}

/**
 * Strict base64 (standard or URL alphabet, which Node's decoder accepts alike): Buffer.from alone would silently
 * skip invalid characters and hand back a shorter key.
 */
export function decodeBase64Key(text: string, what: string): Buffer {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) throw new KeyringError(`${what} is not base64`);
  const key = Buffer.from(trimmed, 'base64');
  if (key.length !== KEY_BYTES) {
    throw new KeyringError(`${what} decodes to ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES}`);
  }
  return key;
}
