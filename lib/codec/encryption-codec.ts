/**
 * AES-256-GCM PayloadCodec. Each payload (metadata and data) is serialized as a Temporal Payload protobuf and
 * encrypted whole, so the history shows only `encoding: binary/encrypted` and the key id. Layout of the encrypted
 * data, as in Temporal's encryption sample: 12-byte random IV | ciphertext | 16-byte GCM tag.
 * Codecs run in the worker and client processes, outside the workflow sandbox, so node:crypto is fine here.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { Keyring } from './keyring';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const METADATA_KEY_ID = 'encryption-key-id';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class PayloadDecryptionError extends Error {
  override name = 'PayloadDecryptionError';
}

/**
 * A payload that arrived without encryption where bootflow always encrypts (a workflow started, signalled or
 * queried by a client without the codec, such as `temporal workflow start --input`): refused, since whoever
 * holds only the Temporal port could otherwise hand workers input that no key holder wrote.
 */
export class UnencryptedPayloadError extends PayloadDecryptionError {
  override name = 'UnencryptedPayloadError';
}

export interface AesGcmPayloadCodecOptions {
  /**
   * `refuse` (workers and clients, the default): decode throws UnencryptedPayloadError on a plain payload.
   * `pass`: handed back as it is, for the codec server, which only shows payloads to a person.
   */
  plainPayloads?: 'refuse' | 'pass';
}

function metadataText(payload: Payload, key: string): string | undefined {
  const value = payload.metadata?.[key];
  return value == null ? undefined : Buffer.from(value).toString('utf8');
}

export function isEncryptedPayload(payload: Payload): boolean {
  return metadataText(payload, METADATA_ENCODING_KEY) === ENCRYPTED_ENCODING;
}

export function encryptedKeyId(payload: Payload): string | undefined {
  return isEncryptedPayload(payload) ? metadataText(payload, METADATA_KEY_ID) : undefined;
}

export class AesGcmPayloadCodec implements PayloadCodec {
  readonly #plainPayloads: 'refuse' | 'pass';

  constructor(
    readonly keyring: Keyring,
    options: AesGcmPayloadCodecOptions = {},
  ) {
    this.#plainPayloads = options.plainPayloads ?? 'refuse';
  }

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => (isEncryptedPayload(payload) ? payload : this.encrypt(payload)));
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      if (isEncryptedPayload(payload)) return this.decrypt(payload);
      if (this.#plainPayloads === 'pass') return payload;
      const encoding = metadataText(payload, METADATA_ENCODING_KEY) ?? 'none';
      throw new UnencryptedPayloadError(
        `Refused a payload that is not encrypted (encoding '${encoding}'): bootflow's workers and clients ` +
          `accept only payloads encrypted with the deployment's key (start workflows with bootflow's client ` +
          `or the API, or the Temporal CLI with --codec-endpoint)`,
      );
    });
  }

  encrypt(payload: Payload): Payload {
    const keyId = this.keyring.currentId;
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.keyFor(keyId)!, iv);
    const plaintext = temporal.api.common.v1.Payload.encodeDelimited(payload).finish();
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return {
      metadata: {
        [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
        [METADATA_KEY_ID]: Buffer.from(keyId),
      },
      data: Buffer.concat([iv, ciphertext, cipher.getAuthTag()]),
    };
  }

  decrypt(payload: Payload): Payload {
    const keyId = metadataText(payload, METADATA_KEY_ID);
    if (!keyId) {
      throw new PayloadDecryptionError(`Encrypted payload has no '${METADATA_KEY_ID}' metadata`);
    }
    const key = this.keyring.keyFor(keyId);
    if (!key) {
      throw new PayloadDecryptionError(
        `Payload was encrypted with key '${keyId}', which is not in the keyring ` +
          `(loaded: ${this.keyring.ids.join(', ')}). Load that key (BOOTFLOW_CODEC_KEYS or codec-keys.json).`,
      );
    }
    const data = Buffer.from(payload.data ?? new Uint8Array());
    if (data.length < IV_BYTES + TAG_BYTES) {
      throw new PayloadDecryptionError(`Payload encrypted with key '${keyId}' is truncated`);
    }
    const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([
        decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
        decipher.final(),
      ]);
    } catch {
      throw new PayloadDecryptionError(
        `Payload encrypted with key '${keyId}' failed authentication: ` +
          `the key loaded under that id is wrong or the ciphertext was altered`,
      );
    }
    try {
      return temporal.api.common.v1.Payload.decodeDelimited(plaintext);
    } catch {
      throw new PayloadDecryptionError(
        `Payload encrypted with key '${keyId}' decrypted to something that is not a Payload`,
      );
    }
  }
}
