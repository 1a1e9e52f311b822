/**
 * Key pairs (os-keypairs), owned by a user as in Nova: generated here (RSA 2048 with the private key handed
 * back once and never stored, as nova/crypto.py generate_key_pair does) or imported from an OpenSSH public
 * key. The fingerprint is the MD5 of the key blob in colon-separated hex, Nova's generate_fingerprint; x509
 * key pairs (a certificate) are in x509.ts.
 */
import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import { isUniqueViolation, type NovaContext } from './db-util';
import type { KeyPairsTable } from './schema';
import { keystoneIdSchema } from './schemas';
import { generateX509KeyPair, x509Fingerprint } from './x509';

export interface KeyPair {
  id: string;
  name: string;
  userId: string;
  fingerprint: string;
  /** An OpenSSH public key, or for x509 the PEM certificate. */
  publicKey: string;
  type: KeyPairType;
  createdAt: number;
}

export type KeyPairType = 'ssh' | 'x509';

/** Nova's key_pairs quota per user (default 100). */
export const DEFAULT_KEY_PAIRS_PER_USER = 100;

/** Nova's _validate_new_key_pair before 2.92: letters, digits, '_', '-' and spaces, 1..255. */
const keyNameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => /^[A-Za-z0-9_\- ]+$/.test(s), 'Keypair name contains unsafe characters');

const SSH_KEY_TYPES = new Set([
  'ssh-rsa',
  'ssh-dss',
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
]);

function invalidKeypair(reason: string): CloudError {
  return new CloudError('BadRequest', `Keypair data is invalid: ${reason}`);
}

/** The key blob of an OpenSSH public key line ("type base64 [comment]"), checked against its own type. */
function sshKeyBlob(publicKey: string): Buffer {
  const [type, data] = publicKey.trim().split(/\s+/);
  if (!type || !data || !SSH_KEY_TYPES.has(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(data)) {
    throw invalidKeypair('failed to generate fingerprint');
  }
  const blob = Buffer.from(data, 'base64');
  const nameLength = blob.length >= 4 ? blob.readUInt32BE(0) : -1;
  if (nameLength < 0 || blob.subarray(4, 4 + nameLength).toString('latin1') !== type) {
    throw invalidKeypair('failed to generate fingerprint');
  }
  return blob;
}

export function fingerprintOf(publicKey: string): string {
  const hex = createHash('md5').update(sshKeyBlob(publicKey)).digest('hex');
  return hex.match(/../g)!.join(':');
}

function sshString(value: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(value.length);
  return Buffer.concat([length, value]);
}

/** An SSH mpint: big-endian, with a leading zero byte when the top bit is set. */
function sshMpint(value: Buffer): Buffer {
  return sshString(value[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), value]) : value);
}

/** A new RSA 2048 key: the OpenSSH public line and the PEM private key (PKCS#1, as Nova's). */
export function generateSshKeyPair(comment = 'Generated-by-Nova'): { publicKey: string; privateKey: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = publicKey.export({ format: 'jwk' });
  const blob = Buffer.concat([
    sshString(Buffer.from('ssh-rsa')),
    sshMpint(Buffer.from(jwk.e as string, 'base64url')),
    sshMpint(Buffer.from(jwk.n as string, 'base64url')),
  ]);
  return {
    publicKey: `ssh-rsa ${blob.toString('base64')} ${comment}`,
    privateKey: privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
  };
}

function keyPairFromRow(row: KeyPairsTable): KeyPair {
  return {
    id: row.id,
    name: row.name,
    userId: row.user_id,
    fingerprint: row.fingerprint,
    publicKey: row.public_key,
    type: row.type === 'x509' ? 'x509' : 'ssh',
    createdAt: Number(row.created_at),
  };
}

function keypairNotFound(name: string, userId: string): CloudError {
  return new CloudError('NotFound', `Keypair ${name} not found for user ${userId}`, { keyName: name });
}

const importSchema = z.strictObject({
  userId: keystoneIdSchema,
  name: keyNameSchema,
  publicKey: z.string().min(1).max(16_384),
  type: z.enum(['ssh', 'x509']).default('ssh'),
});
export type ImportKeyPairInput = z.input<typeof importSchema>;

/** Records a public key for a user; the name is unique per user (409 KeyPairExists). */
export async function importKeyPair(ctx: NovaContext, input: unknown): Promise<KeyPair> {
  const req = parseRequest(importSchema, input, 'key pair');
  const fingerprint = req.type === 'x509' ? x509Fingerprint(req.publicKey) : fingerprintOf(req.publicKey);
  return ctx.store.transaction(async (trx) => {
    const count = await trx
      .selectFrom('key_pairs')
      .select((eb) => eb.fn.countAll().as('n'))
      .where('user_id', '=', req.userId)
      .executeTakeFirst();
    if (Number(count?.n ?? 0) >= DEFAULT_KEY_PAIRS_PER_USER) {
      throw new CloudError('QuotaExceeded', 'Quota exceeded, too many key pairs.', { resource: 'key_pairs' });
    }
    const row: KeyPairsTable = {
      id: randomUUID(),
      name: req.name,
      user_id: req.userId,
      fingerprint,
      public_key: req.type === 'x509' ? req.publicKey : req.publicKey.trim(),
      type: req.type,
      created_at: ctx.clock.now(),
    };
    try {
      await trx.insertInto('key_pairs').values(row).execute();
    } catch (err) {
      if (isUniqueViolation(err)) throw new CloudError('Conflict', `Key pair '${req.name}' already exists.`);
      throw err;
    }
    return keyPairFromRow(row);
  });
}

/** Generates a key pair and records its public half; the private key is returned once. */
export async function createKeyPair(
  ctx: NovaContext,
  input: { userId: string; name: string; type?: KeyPairType },
): Promise<KeyPair & { privateKey: string }> {
  const req = parseRequest(importSchema.omit({ publicKey: true }), input, 'key pair');
  if (req.type === 'x509') {
    const { certificate, privateKey } = await generateX509KeyPair(req.userId);
    return { ...(await importKeyPair(ctx, { ...input, publicKey: certificate })), privateKey };
  }
  const { publicKey, privateKey } = generateSshKeyPair();
  return { ...(await importKeyPair(ctx, { ...input, publicKey })), privateKey };
}

export async function getKeyPair(ctx: NovaContext, userId: string, name: string): Promise<KeyPair> {
  const row = await ctx.store.db
    .selectFrom('key_pairs')
    .selectAll()
    .where('user_id', '=', userId)
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row) throw keypairNotFound(name, userId);
  return keyPairFromRow(row);
}

export async function listKeyPairs(ctx: NovaContext, userId: string): Promise<KeyPair[]> {
  const rows = await ctx.store.db
    .selectFrom('key_pairs')
    .selectAll()
    .where('user_id', '=', userId)
    .orderBy('name')
    .execute();
  return rows.map(keyPairFromRow);
}

export async function deleteKeyPair(ctx: NovaContext, userId: string, name: string): Promise<void> {
  const result = await ctx.store.db
    .deleteFrom('key_pairs')
    .where('user_id', '=', userId)
    .where('name', '=', name)
    .executeTakeFirst();
  if (Number(result.numDeletedRows) === 0) throw keypairNotFound(name, userId);
}
