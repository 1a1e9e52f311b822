/**
 * Looking for secrets in bytes: a secret counts as found if its UTF-8 text, its hex, or its base64 or
 * base64url form at any of the three byte alignments appears (so a secret inside a larger base64 blob, as
 * `temporal workflow show -o json` prints payload data, is found too).
 */
import type { Payload } from '@temporalio/common';
import { isEncryptedPayload } from '../../lib/codec';

/** The base64 characters that depend only on the secret, for each alignment of it in a larger blob. */
function base64Needles(secret: Buffer): string[] {
  const needles: string[] = [];
  for (const encoding of ['base64', 'base64url'] as const) {
    for (let shift = 0; shift < 3; shift++) {
      const encoded = Buffer.concat([Buffer.alloc(shift), secret]).toString(encoding);
      const from = Math.ceil((4 * shift) / 3);
      const to = Math.floor((4 * (shift + secret.length)) / 3);
      if (to - from >= 8) needles.push(encoded.slice(from, to));
    }
  }
  return needles;
}

export interface Secret {
  /** What it is, for the assertion message (never the value). */
  name: string;
  value: Buffer;
}

export function secret(name: string, value: string | Buffer): Secret {
  return { name, value: Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8') };
}

/** The forms of each secret found in `haystack`: ["demo password (base64url)", ...]. */
export function findSecrets(haystack: Buffer | string, secrets: readonly Secret[]): string[] {
  const text = Buffer.isBuffer(haystack) ? haystack : Buffer.from(haystack, 'utf8');
  const found: string[] = [];
  for (const s of secrets) {
    const forms: Array<[string, Buffer]> = [
      ['raw', s.value],
      ['hex', Buffer.from(s.value.toString('hex'))],
      ['HEX', Buffer.from(s.value.toString('hex').toUpperCase())],
      ...base64Needles(s.value).map((n): [string, Buffer] => ['base64', Buffer.from(n)]),
    ];
    for (const [form, needle] of forms) {
      if (needle.length > 0 && text.includes(needle)) {
        found.push(`${s.name} (${form})`);
        break;
      }
    }
  }
  return found;
}

/** Every Temporal Payload inside a (proto-decoded) history, with the path it was found at. */
export function payloadsIn(value: unknown, path = ''): Array<{ path: string; payload: Payload }> {
  const out: Array<{ path: string; payload: Payload }> = [];
  if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return out;
  const record = value as Record<string, unknown>;
  if (record.metadata && typeof record.metadata === 'object' && record.data instanceof Uint8Array) {
    out.push({ path, payload: record as Payload });
    return out;
  }
  for (const [key, child] of Object.entries(record)) out.push(...payloadsIn(child, `${path}.${key}`));
  return out;
}

/** Strings in a decoded value that look like compact JWS tokens (Keystone's). */
export function jwsTokensIn(value: unknown, into = new Set<string>()): Set<string> {
  if (typeof value === 'string') {
    if (/^[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}$/.test(value)) into.add(value);
  } else if (value && typeof value === 'object') {
    for (const child of Object.values(value as Record<string, unknown>)) jwsTokensIn(child, into);
  }
  return into;
}

/**
 * Every payload of a history as its plain bytes: encrypted ones through `decode` (the codec with the
 * deployment's keys), the others as stored. For looking for secrets behind the encryption.
 */
export async function plainPayloadsIn(
  history: unknown,
  decode: (payloads: Payload[]) => Promise<Payload[]>,
): Promise<Array<{ path: string; bytes: Buffer }>> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  for (const { path, payload } of payloadsIn(history)) {
    // Search attributes and patch markers are plain by design; the workers' codec refuses plain payloads.
    const [plain] = isEncryptedPayload(payload) ? await decode([payload]) : [payload];
    out.push({ path, bytes: Buffer.from(plain?.data ?? new Uint8Array()) });
  }
  return out;
}
