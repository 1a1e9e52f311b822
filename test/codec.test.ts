import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { encodeErrorToFailure, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import {
  AesGcmPayloadCodec,
  Keyring,
  KeyringError,
  PayloadDecryptionError,
  UnencryptedPayloadError,
  codecKeyFilePath,
  encryptedKeyId,
  encryptingDataConverter,
  ensureCodecKeyFile,
  loadKeyring,
  parseKeyList,
  rotateCodecKey,
} from '../lib/codec';
import { createLogger } from '../lib/logger';

const SECRET = 'admin-password-Zq7!';

function keyring(...ids: string[]): Keyring {
  return new Keyring(ids.map((id) => ({ id, key: randomBytes(32) })));
}

function plain(value: unknown): Payload {
  return defaultPayloadConverter.toPayload(value);
}

function valueOf(payload: Payload): unknown {
  return defaultPayloadConverter.fromPayload(payload);
}

function text(payload: Payload): string {
  return Buffer.from(temporal.api.common.v1.Payload.encode(payload).finish()).toString('latin1');
}

function tempDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'bootflow-codec-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('AES-256-GCM payload codec', () => {
  test('round trip: metadata and data come back exactly, the wire form holds no plaintext', async () => {
    const codec = new AesGcmPayloadCodec(keyring('k1'));
    const originals = [plain({ password: SECRET, n: 1 }), plain('second'), plain(undefined)];
    const encoded = await codec.encode(originals);
    for (const payload of encoded) {
      assert.equal(Buffer.from(payload.metadata!.encoding!).toString(), 'binary/encrypted');
      assert.equal(encryptedKeyId(payload), 'k1');
      assert.deepEqual(Object.keys(payload.metadata!).sort(), ['encoding', 'encryption-key-id']);
      assert.doesNotMatch(text(payload), /admin-password|json\/plain|second/);
    }
    const decoded = await codec.decode(encoded);
    assert.deepEqual(valueOf(decoded[0]!), { password: SECRET, n: 1 });
    assert.equal(valueOf(decoded[1]!), 'second');
    assert.equal(valueOf(decoded[2]!), undefined);
    assert.equal(Buffer.from(decoded[0]!.metadata!.encoding!).toString(), 'json/plain');
  });

  test('a random IV per payload: the same value encrypts differently each time', async () => {
    const codec = new AesGcmPayloadCodec(keyring('k1'));
    const [a, b] = await codec.encode([plain('same'), plain('same')]);
    assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(b!.data!));
    // 12-byte IV + delimited payload + 16-byte tag
    assert.ok(a!.data!.length >= 12 + 16 + 'same'.length);
  });

  test('already encrypted payloads are not encrypted twice; a plain payload is refused by decode', async () => {
    const codec = new AesGcmPayloadCodec(keyring('k1'));
    const [once] = await codec.encode([plain('x')]);
    const [twice] = await codec.encode([once!]);
    assert.equal(twice, once);
    // Workers and clients: only what a key holder encrypted is accepted (issue 15, finding 2).
    await assert.rejects(codec.decode([plain('not encrypted')]), (err: unknown) => {
      assert.ok(err instanceof UnencryptedPayloadError);
      assert.ok(err instanceof PayloadDecryptionError);
      assert.match(err.message, /not encrypted \(encoding 'json\/plain'\)/);
      return true;
    });
    // The codec server only shows payloads to a person: it hands plain ones back as they are.
    const shown = plain('shown as it is');
    const [passed] = await new AesGcmPayloadCodec(keyring('k1'), { plainPayloads: 'pass' }).decode([shown]);
    assert.equal(passed, shown);
  });

  test('rotation: old payloads still decrypt, new payloads use the newest key', async () => {
    const k1 = { id: 'k1', key: randomBytes(32) };
    const before = new AesGcmPayloadCodec(new Keyring([k1]));
    const [old] = await before.encode([plain('written before rotation')]);
    const after = new AesGcmPayloadCodec(new Keyring([k1, { id: 'k2', key: randomBytes(32) }]));
    const [fresh] = await after.encode([plain('written after rotation')]);
    assert.equal(encryptedKeyId(old!), 'k1');
    assert.equal(encryptedKeyId(fresh!), 'k2');
    const [a, b] = await after.decode([old!, fresh!]);
    assert.equal(valueOf(a!), 'written before rotation');
    assert.equal(valueOf(b!), 'written after rotation');
    // The old keyring cannot read what the new key wrote, and says which key it lacks.
    await assert.rejects(before.decode([fresh!]), /key 'k2', which is not in the keyring \(loaded: k1\)/);
  });

  test('tampered ciphertext, IV or tag fails authentication with a clear error, never garbage', async () => {
    const codec = new AesGcmPayloadCodec(keyring('k1'));
    const [encoded] = await codec.encode([plain({ password: SECRET })]);
    const length = encoded!.data!.length;
    for (const index of [0, 11, 12, length - 17, length - 1]) {
      const data = Buffer.from(encoded!.data!);
      data[index]! ^= 0x01;
      await assert.rejects(
        codec.decode([{ ...encoded!, data }]),
        (err: unknown) =>
          err instanceof PayloadDecryptionError &&
          /key 'k1' failed authentication: the key loaded under that id is wrong or the ciphertext was altered/.test(
            err.message,
          ),
        `flipping byte ${index} was not detected`,
      );
    }
    await assert.rejects(codec.decode([{ ...encoded!, data: encoded!.data!.subarray(0, 20) }]), /truncated/);
  });

  test('a wrong key under the right id and an unknown key id are both clear errors', async () => {
    const [encoded] = await new AesGcmPayloadCodec(keyring('k1')).encode([plain('v')]);
    await assert.rejects(
      new AesGcmPayloadCodec(keyring('k1')).decode([encoded!]),
      /key 'k1' failed authentication/,
    );
    await assert.rejects(
      new AesGcmPayloadCodec(keyring('other', 'another')).decode([encoded!]),
      (err: unknown) =>
        err instanceof PayloadDecryptionError &&
        err.message.includes(`key 'k1', which is not in the keyring (loaded: other, another)`),
    );
    const noId: Payload = { metadata: { encoding: encoded!.metadata!.encoding! }, data: encoded!.data! };
    await assert.rejects(new AesGcmPayloadCodec(keyring('k1')).decode([noId]), /no 'encryption-key-id'/);
  });

  test('with the failure converter, error messages and stacks are encrypted too', async () => {
    const converter = loadDataConverter(encryptingDataConverter(keyring('k1')));
    const failure = await encodeErrorToFailure(converter, new Error(`login failed for ${SECRET}`));
    const raw = Buffer.from(temporal.api.failure.v1.Failure.encode(failure).finish()).toString('latin1');
    assert.doesNotMatch(raw, /admin-password|login failed/);
    assert.equal(failure.message, 'Encoded failure');
    assert.equal(encryptedKeyId(failure.encodedAttributes!), 'k1');
  });
});

describe('keyring', () => {
  test('BOOTFLOW_CODEC_KEYS: id:base64 pairs, newest last', () => {
    const a = randomBytes(32).toString('base64');
    const b = randomBytes(32).toString('base64url');
    const ring = loadKeyring({ env: { BOOTFLOW_CODEC_KEYS: `old:${a}, new:${b}` } });
    assert.deepEqual(ring.ids, ['old', 'new']);
    assert.equal(ring.currentId, 'new');
    assert.deepEqual(ring.keyFor('new'), Buffer.from(b, 'base64url'));
  });

  test('a malformed key list is an error at start that never echoes the key', () => {
    const short = randomBytes(16).toString('base64');
    const cases: Array<[string, RegExp]> = [
      [`k1:${short}`, /key 'k1' decodes to 16 bytes; AES-256 needs exactly 32/],
      ['k1:not base64 at all!', /key 'k1' is not base64/],
      [randomBytes(32).toString('base64'), /entry 1 is not of the form id:base64key/],
      [
        `k1:${randomBytes(32).toString('base64')},k1:${randomBytes(32).toString('base64')}`,
        /'k1' appears twice/,
      ],
      [`bad id!:${randomBytes(32).toString('base64')}`, /invalid id/],
      [' , ', /holds no payload-encryption key/],
    ];
    for (const [value, expected] of cases) {
      assert.throws(
        () => parseKeyList(value),
        (err: unknown) =>
          err instanceof KeyringError && expected.test(err.message) && !err.message.includes(short),
        value,
      );
    }
  });

  test('key material never shows in JSON, inspect or pino-style serialization', () => {
    const key = randomBytes(32);
    const ring = new Keyring([{ id: 'k1', key }]);
    const shown = JSON.stringify({ ring }) + inspect(ring) + String(ring);
    assert.ok(!shown.includes(key.toString('base64')));
    assert.ok(!shown.includes(key.toString('hex')));
    assert.match(JSON.stringify(ring), /"ids":\["k1"\]/);
  });
});

describe('key file in the data directory', () => {
  test('ensureCodecKeyFile creates a 0600 file once, then loads the same keys', () => {
    const { dir, cleanup } = tempDir();
    try {
      const first = ensureCodecKeyFile(path.join(dir, 'data'));
      assert.equal(first.created, true);
      assert.equal(statSync(first.path).mode & 0o777, 0o600);
      assert.match(first.keyring.currentId, /^bootflow-\d{8}-[0-9a-f]{8}$/);
      const second = ensureCodecKeyFile(path.join(dir, 'data'));
      assert.equal(second.created, false);
      assert.deepEqual(second.keyring.ids, first.keyring.ids);
      assert.deepEqual(
        second.keyring.keyFor(first.keyring.currentId),
        first.keyring.keyFor(first.keyring.currentId),
      );
      // One key, and no temporary files left next to it.
      assert.equal((JSON.parse(readFileSync(first.path, 'utf8')) as { keys: [] }).keys.length, 1);
      assert.deepEqual(readdirSync(path.join(dir, 'data')), ['codec-keys.json']);
    } finally {
      cleanup();
    }
  });

  test('a group- or world-readable key file is refused with the chmod to run', () => {
    const { dir, cleanup } = tempDir();
    try {
      const { path: file } = ensureCodecKeyFile(dir);
      for (const mode of [0o644, 0o640, 0o604, 0o660]) {
        chmodSync(file, mode);
        assert.throws(
          () => loadKeyring({ env: {}, dataDir: dir }),
          new RegExp(`mode 0${mode.toString(8)}.*chmod 600`),
        );
        assert.throws(() => ensureCodecKeyFile(dir), /chmod 600/);
      }
      chmodSync(file, 0o600);
      assert.equal(loadKeyring({ env: {}, dataDir: dir }).ids.length, 1);
    } finally {
      cleanup();
    }
  });

  test('a missing or corrupt key file is a clear error at start', () => {
    const { dir, cleanup } = tempDir();
    try {
      assert.throws(
        () => loadKeyring({ env: {}, dataDir: dir }),
        /No payload-encryption key: .*codec-keys\.json does not exist and BOOTFLOW_CODEC_KEYS is not set/,
      );
      const file = codecKeyFilePath(dir);
      writeFileSync(file, '{"version":1,"keys":[{"id":"k1","key":"c2hvcnQ=","createdAt":"x"}]}', {
        mode: 0o600,
      });
      assert.throws(() => loadKeyring({ env: {}, dataDir: dir }), /key 'k1' decodes to 5 bytes/);
      writeFileSync(file, 'not json');
      assert.throws(() => loadKeyring({ env: {}, dataDir: dir }), /is not valid JSON/);
      // The environment wins over the file, and a bad environment value does not fall back to it.
      assert.throws(
        () => loadKeyring({ env: { BOOTFLOW_CODEC_KEYS: 'k1:abc' }, dataDir: dir }),
        /BOOTFLOW_CODEC_KEYS: key 'k1'/,
      );
    } finally {
      cleanup();
    }
  });

  test('rotateCodecKey appends a key that new payloads use; old payloads keep decrypting', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const { keyring: before } = ensureCodecKeyFile(dir);
      const [old] = await new AesGcmPayloadCodec(before).encode([plain('before')]);
      const newId = await rotateCodecKey(dir);
      assert.equal(statSync(codecKeyFilePath(dir)).mode & 0o777, 0o600);
      const after = loadKeyring({ env: {}, dataDir: dir });
      assert.deepEqual(after.ids, [before.currentId, newId]);
      assert.equal(after.currentId, newId);
      const codec = new AesGcmPayloadCodec(after);
      const [fresh] = await codec.encode([plain('after')]);
      assert.equal(encryptedKeyId(fresh!), newId);
      assert.deepEqual((await codec.decode([old!, fresh!])).map(valueOf), ['before', 'after']);
      // Concurrent rotations serialize on the lock: none is lost.
      const ids = await Promise.all([rotateCodecKey(dir), rotateCodecKey(dir)]);
      assert.deepEqual(loadKeyring({ env: {}, dataDir: dir }).ids.slice(2).sort(), ids.sort());
    } finally {
      cleanup();
    }
  });
});

describe('log redaction (pino paths from lib/logger.ts)', () => {
  test('passwords, tokens and keys in the shapes bootflow logs never reach the output', () => {
    const lines: string[] = [];
    const log = createLogger({
      env: { LOG_LEVEL: 'info' },
      destination: new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    });
    const secrets = {
      password: 'pw-keystone-1',
      tokenId: 'tok-keystone-2',
      adminPass: 'nova-admin-3',
      header: 'x-auth-4',
      subject: 'x-subject-5',
      codecKeys: `k1:${randomBytes(32).toString('base64')}`,
      bearer: 'codec-bearer-6',
      apiKey: 'temporal-api-7',
      cookie: 'session=cookie-8',
    };
    const ring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
    log.info(
      {
        auth: {
          identity: {
            methods: ['password'],
            password: { user: { name: 'demo', password: secrets.password } },
          },
        },
      },
      'keystone password auth',
    );
    log.info({ auth: { identity: { methods: ['token'], token: { id: secrets.tokenId } } } }, 'rescope');
    log.info({ server: { id: 'srv-1', adminPass: secrets.adminPass } }, 'server created');
    log.info({ response: { server: { adminPass: secrets.adminPass } } }, 'nova answered');
    log.info(
      {
        req: {
          headers: {
            'x-auth-token': secrets.header,
            'x-subject-token': secrets.subject,
            cookie: secrets.cookie,
          },
        },
      },
      'request',
    );
    log.info({ env: { BOOTFLOW_CODEC_KEYS: secrets.codecKeys, TEMPORAL_API_KEY: secrets.apiKey } }, 'env');
    log.info({ options: { bearerToken: secrets.bearer, port: 8888 }, keyring: ring }, 'codec');
    log.info({ user: { credentials: { password: secrets.password } } }, 'nested twice');
    const out = lines.join('');
    for (const [name, value] of Object.entries(secrets)) {
      assert.ok(!out.includes(value), `${name} leaked into the log`);
    }
    assert.ok(!out.includes(ring.keyFor('k1')!.toString('base64')));
    // What is not secret stays readable.
    assert.match(out, /"methods":\["password"\]/);
    assert.match(out, /"id":"srv-1"/);
    assert.match(out, /"port":8888/);
    assert.match(out, /"ids":\["k1"\]/);
  });
});
