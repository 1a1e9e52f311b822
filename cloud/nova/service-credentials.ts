/**
 * Compute service credentials, as nova-compute has its own service user and password: the bootstrap issues
 * each compute host a secret key (32 random bytes), kept twice, both mode 0600: in the controller's list
 * (`$BOOTFLOW_DATA/compute-service-keys.json`, host → key) and in the host's own directory
 * (`hosts/<host>/service-key`, which is all a compute machine needs). A compute worker signs its
 * registration and every heartbeat with an HMAC-SHA256 over the host name, the message kind and the time it
 * sent it; the controller's compute-service activities check it. A host with no key, or a wrong MAC, is
 * refused: whoever holds only the Temporal port cannot make the scheduler send boots to a host of its own.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CloudError } from '../errors';

export const SERVICE_KEYS_FILE = 'compute-service-keys.json';
export const HOST_SERVICE_KEY_FILE = 'service-key';

/** What a compute worker attaches to `register` and `heartbeat`. */
export interface ServiceProof {
  /** When the host signed it (its clock, epoch ms). */
  sentAt: number;
  /** base64url HMAC-SHA256 of `<host>\n<kind>\n<sentAt>` under the host's key. */
  mac: string;
}

export type ServiceMessageKind = 'register' | 'heartbeat';

function keysFile(dataDir: string): string {
  return path.join(path.resolve(dataDir), SERVICE_KEYS_FILE);
}

function hostKeyFile(dataDir: string, host: string): string {
  return path.join(path.resolve(dataDir), 'hosts', host, HOST_SERVICE_KEY_FILE);
}

function readKeys(dataDir: string): Record<string, string> | undefined {
  let text: string;
  try {
    text = readFileSync(keysFile(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const parsed = JSON.parse(text) as { version?: number; hosts?: Record<string, string> };
  return parsed.hosts ?? {};
}

/** The bootstrap's part: a key for every host in `hosts` that has none yet (idempotent). */
export function issueComputeServiceKeys(dataDir: string, hosts: readonly string[]): void {
  const keys = readKeys(dataDir) ?? {};
  let changed = false;
  for (const host of hosts) {
    if (!/^[A-Za-z0-9._-]{1,255}$/.test(host)) throw new CloudError('BadRequest', `Bad host name '${host}'`);
    keys[host] ??= ((changed = true), randomBytes(32).toString('base64url'));
    const own = hostKeyFile(dataDir, host);
    mkdirSync(path.dirname(own), { recursive: true, mode: 0o700 });
    writeFileSync(own, `${keys[host]}\n`, { mode: 0o600 });
    chmodSync(own, 0o600);
  }
  if (!changed && readKeys(dataDir) !== undefined) return;
  const file = keysFile(dataDir);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify({ version: 1, hosts: keys }, null, 2)}\n`, { mode: 0o600 });
  renameSync(temp, file);
}

/** The controller's list; undefined when the data directory has none (a bootstrap older than keys). */
export function loadComputeServiceKeys(dataDir: string): ReadonlyMap<string, Buffer> | undefined {
  const keys = readKeys(dataDir);
  if (keys === undefined) return undefined;
  return new Map(Object.entries(keys).map(([host, key]) => [host, Buffer.from(key, 'base64url')]));
}

/** A compute host's own key; undefined when the bootstrap issued it none. */
export function loadHostServiceKey(dataDir: string, host: string): Buffer | undefined {
  try {
    return Buffer.from(readFileSync(hostKeyFile(dataDir, host), 'utf8').trim(), 'base64url');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function macOf(key: Buffer, host: string, kind: ServiceMessageKind, sentAt: number): Buffer {
  return createHmac('sha256', key).update(`${host}\n${kind}\n${sentAt}`).digest();
}

/** Signs one message of `host` (the compute worker's side). */
export function signServiceMessage(
  key: Buffer,
  host: string,
  kind: ServiceMessageKind,
  sentAt: number,
): ServiceProof {
  return { sentAt, mac: macOf(key, host, kind, sentAt).toString('base64url') };
}

/**
 * The controller's check: the host has a key and the proof is its MAC for this kind of message. Throws
 * Unauthorized (not retryable) naming the host and why, never the key or the MAC.
 */
export function verifyServiceMessage(
  keys: ReadonlyMap<string, Buffer>,
  host: string,
  kind: ServiceMessageKind,
  proof: ServiceProof | undefined,
): void {
  const key = keys.get(host);
  if (!key) {
    throw new CloudError('Unauthorized', `Compute host '${host}' has no service credential: refused`, {
      host,
    });
  }
  const presented = Buffer.from(proof?.mac ?? '', 'base64url');
  const expected = macOf(key, host, kind, proof?.sentAt ?? NaN);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new CloudError(
      'Unauthorized',
      `Compute host '${host}' did not prove who it is (${kind}): refused`,
      {
        host,
      },
    );
  }
}
