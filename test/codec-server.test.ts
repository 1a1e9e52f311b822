import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import {
  AesGcmPayloadCodec,
  Keyring,
  encryptedKeyId,
  startCodecServer,
  type RunningCodecServer,
} from '../lib/codec';
import { createLogger } from '../lib/logger';

const UI = 'http://localhost:8233';
const TOKEN = 'codec-token-8f2b1c-0123456789abcdef0123456789';
const SECRET = 'tenant-password-Xy9';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function call(
  server: RunningCodecServer,
  pathname: string,
  options: { method?: string; headers?: Record<string, string>; body?: unknown; anonymous?: boolean } = {},
): Promise<Reply> {
  // Every call carries the token unless it is a test of calls without one.
  const auth: Record<string, string> = options.anonymous ? {} : { Authorization: `Bearer ${TOKEN}` };
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${server.url}${pathname}`,
      {
        method: options.method ?? 'POST',
        headers: { 'Content-Type': 'application/json', ...auth, ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

type JsonPayload = { metadata: Record<string, string>; data?: string };

function jsonPayload(value: unknown): JsonPayload {
  const p = defaultPayloadConverter.toPayload(value);
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? []).toString('base64'),
  };
}

function valueOf(p: JsonPayload): unknown {
  return defaultPayloadConverter.fromPayload({
    metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  });
}

const logOutput: string[] = [];
const log = createLogger({
  env: { LOG_LEVEL: 'debug' },
  destination: new Writable({
    write(chunk: Buffer, _enc, done) {
      logOutput.push(chunk.toString());
      done();
    },
  }),
});

describe('codec server for the Web UI', () => {
  const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
  let server: RunningCodecServer;
  before(async () => {
    server = await startCodecServer({ keyring, bearerToken: TOKEN, logger: log });
  });
  after(async () => {
    await server?.close();
  });

  test('encode then decode round-trips the payloads the Web UI sends', async () => {
    const values = [{ password: SECRET, size: 1 }, 'two'];
    const encoded = await call(server, '/encode', {
      headers: { 'X-Namespace': 'default' },
      body: { payloads: values.map(jsonPayload) },
    });
    assert.equal(encoded.status, 200, encoded.body);
    assert.equal(encoded.headers['cache-control'], 'no-store');
    const encrypted = (JSON.parse(encoded.body) as { payloads: JsonPayload[] }).payloads;
    assert.equal(encrypted.length, 2);
    assert.ok(!encoded.body.includes(Buffer.from(SECRET).toString('base64').slice(0, 12)));
    assert.equal(Buffer.from(encrypted[0]!.metadata.encoding!, 'base64').toString(), 'binary/encrypted');
    const decoded = await call(server, '/decode', {
      headers: { 'X-Namespace': 'default' },
      body: { payloads: encrypted },
    });
    assert.equal(decoded.status, 200, decoded.body);
    const plain = (JSON.parse(decoded.body) as { payloads: JsonPayload[] }).payloads;
    assert.deepEqual(plain.map(valueOf), values);
  });

  test('decodes what the worker-side codec wrote, under /<namespace>/decode too', async () => {
    const [p] = await new AesGcmPayloadCodec(keyring).encode([
      defaultPayloadConverter.toPayload('from the worker'),
    ]);
    assert.equal(encryptedKeyId(p!), 'k1');
    const wire: JsonPayload = {
      metadata: Object.fromEntries(
        Object.entries(p!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
      data: Buffer.from(p!.data!).toString('base64'),
    };
    const reply = await call(server, '/default/decode', { body: { payloads: [wire] } });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(
      valueOf((JSON.parse(reply.body) as { payloads: JsonPayload[] }).payloads[0]!),
      'from the worker',
    );
  });

  test('CORS: the Web UI origin gets its preflight and headers; other origins get nothing and a 403', async () => {
    for (const origin of [UI, 'http://127.0.0.1:8233']) {
      const preflight = await call(server, '/decode', {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type,x-namespace',
        },
      });
      assert.equal(preflight.status, 204);
      assert.equal(preflight.headers['access-control-allow-origin'], origin);
      assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);
      assert.match(String(preflight.headers['access-control-allow-headers']), /X-Namespace/);
      assert.match(String(preflight.headers['access-control-allow-headers']), /Content-Type/);
      assert.equal(preflight.headers['access-control-allow-credentials'], 'true');
      const post = await call(server, '/decode', {
        headers: { Origin: origin },
        body: { payloads: [] },
      });
      assert.equal(post.status, 200);
      assert.equal(post.headers['access-control-allow-origin'], origin);
    }
    for (const origin of ['http://evil.example', 'http://localhost:8234', 'null']) {
      const preflight = await call(server, '/decode', {
        method: 'OPTIONS',
        headers: { Origin: origin, 'Access-Control-Request-Method': 'POST' },
      });
      assert.equal(preflight.status, 403);
      assert.equal(preflight.headers['access-control-allow-origin'], undefined);
      const post = await call(server, '/decode', {
        headers: { Origin: origin },
        body: { payloads: [] },
      });
      assert.equal(post.status, 403);
      assert.equal(post.headers['access-control-allow-origin'], undefined);
    }
  });

  test('bad requests get clear 4xx answers; a tampered payload is a 400 naming the key id', async () => {
    assert.equal((await call(server, '/other', { body: { payloads: [] } })).status, 404);
    assert.equal((await call(server, '/decode', { method: 'GET' })).status, 405);
    const notJson = await call(server, '/decode', {
      headers: { 'Content-Type': 'text/plain' },
      body: { payloads: [] },
    });
    assert.equal(notJson.status, 415);
    assert.equal((await call(server, '/decode', { body: { nope: 1 } })).status, 400);
    assert.equal((await call(server, '/decode', { body: { payloads: [{ data: '%%%' }] } })).status, 400);
    const [p] = await new AesGcmPayloadCodec(keyring).encode([defaultPayloadConverter.toPayload(SECRET)]);
    const data = Buffer.from(p!.data!);
    data[20]! ^= 0xff;
    const tampered = await call(server, '/decode', {
      body: {
        payloads: [
          {
            metadata: Object.fromEntries(
              Object.entries(p!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
            ),
            data: data.toString('base64'),
          },
        ],
      },
    });
    assert.equal(tampered.status, 400);
    assert.match(tampered.body, /key 'k1' failed authentication/);
  });

  test('nothing secret reaches the server log', () => {
    const out = logOutput.join('');
    assert.match(out, /codec server listening/);
    assert.ok(!out.includes(SECRET));
    assert.ok(!out.includes(Buffer.from(SECRET).toString('base64')));
  });
});

describe('codec server with a bearer token', () => {
  let server: RunningCodecServer;
  before(async () => {
    server = await startCodecServer({
      keyring: new Keyring([{ id: 'k1', key: randomBytes(32) }]),
      bearerToken: TOKEN,
      allowedOrigins: ['https://temporal.example.com'],
      logger: log,
    });
  });
  after(async () => {
    await server?.close();
  });

  test('401 without the token or with a wrong one; 200 with it', async () => {
    const body = { payloads: [jsonPayload('x')] };
    const none = await call(server, '/encode', { body, anonymous: true });
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer');
    for (const wrong of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, 'Basic abc']) {
      assert.equal(
        (await call(server, '/encode', { headers: { Authorization: wrong }, body })).status,
        401,
        wrong,
      );
    }
    const ok = await call(server, '/encode', { headers: { Authorization: `Bearer ${TOKEN}` }, body });
    assert.equal(ok.status, 200);
  });

  test('preflight needs no token (browsers send none) and only the configured origin is allowed', async () => {
    const preflight = await call(server, '/encode', {
      method: 'OPTIONS',
      headers: { Origin: 'https://temporal.example.com', 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(preflight.status, 204);
    assert.match(String(preflight.headers['access-control-allow-headers']), /Authorization/);
    const defaultUi = await call(server, '/encode', {
      method: 'OPTIONS',
      headers: { Origin: UI, 'Access-Control-Request-Method': 'POST' },
    });
    assert.equal(defaultUi.status, 403);
  });

  test('wildcard or malformed origins are refused at start', async () => {
    const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
    for (const origin of ['*', 'http://localhost:8233/', 'localhost:8233', 'http://*.example.com']) {
      const started = startCodecServer({
        keyring,
        bearerToken: TOKEN,
        allowedOrigins: [origin],
        logger: log,
      });
      // Close a server that should not have started, so a failure here cannot hang the run.
      void started.then((s) => s.close()).catch(() => undefined);
      await assert.rejects(started, /not an exact origin/, origin);
    }
  });
});

describe('issue 15 finding 1: no anonymous codec server', () => {
  const keyring = new Keyring([{ id: 'k1', key: randomBytes(32) }]);
  let server: RunningCodecServer;
  before(async () => {
    server = await startCodecServer({
      keyring,
      bearerToken: TOKEN,
      uiUrl: `${UI}/namespaces/default/workflows`,
      logger: log,
    });
  });
  after(async () => {
    await server?.close();
  });

  test('there is no server without a token (nor with a short one)', async () => {
    for (const bearerToken of [undefined, '', 'short']) {
      const started = startCodecServer({ keyring, bearerToken: bearerToken as string, logger: log });
      void started.then((s) => s.close()).catch(() => undefined);
      await assert.rejects(started, /needs a bearer token/);
    }
  });

  test('no token: /decode and /encode are 401, with no Origin, the Web UI Origin or a forged one', async () => {
    const [secret] = await new AesGcmPayloadCodec(keyring).encode([
      defaultPayloadConverter.toPayload(SECRET),
    ]);
    const wire = {
      metadata: Object.fromEntries(
        Object.entries(secret!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      ),
      data: Buffer.from(secret!.data!).toString('base64'),
    };
    const cases: Array<Record<string, string>> = [{}, { Origin: UI }, { Origin: 'http://127.0.0.1:8233' }];
    for (const headers of cases) {
      const decode = await call(server, '/decode', { headers, body: { payloads: [wire] }, anonymous: true });
      assert.equal(decode.status, 401, JSON.stringify(headers));
      assert.ok(!decode.body.includes(Buffer.from(SECRET).toString('base64').slice(0, 12)));
      const encode = await call(server, '/encode', {
        headers,
        body: { payloads: [jsonPayload('oracle')] },
        anonymous: true,
      });
      assert.equal(encode.status, 401, JSON.stringify(headers));
    }
    const wrongCookie = await call(server, '/decode', {
      headers: { Origin: UI, Cookie: 'bootflow_codec=guess' },
      body: { payloads: [wire] },
      anonymous: true,
    });
    assert.equal(wrongCookie.status, 401);
  });

  test('the Web UI: /login with the token sets an HttpOnly SameSite cookie, which then decodes', async () => {
    const refused = await call(server, '/login?token=wrong', { method: 'GET', anonymous: true });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['set-cookie'], undefined);
    const login = await call(server, `/login?token=${encodeURIComponent(TOKEN)}`, {
      method: 'GET',
      anonymous: true,
    });
    assert.equal(login.status, 303);
    assert.equal(login.headers.location, `${UI}/namespaces/default/workflows`);
    const cookie = login.headers['set-cookie']?.[0] ?? '';
    assert.match(cookie, /^bootflow_codec=[^;]+; HttpOnly; SameSite=Strict; Path=\//);
    const [p] = await new AesGcmPayloadCodec(keyring).encode([defaultPayloadConverter.toPayload('shown')]);
    const decoded = await call(server, '/decode', {
      headers: { Origin: UI, Cookie: cookie.split(';')[0]! },
      body: {
        payloads: [
          {
            metadata: Object.fromEntries(
              Object.entries(p!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
            ),
            data: Buffer.from(p!.data!).toString('base64'),
          },
        ],
      },
      anonymous: true,
    });
    assert.equal(decoded.status, 200, decoded.body);
    assert.equal(valueOf((JSON.parse(decoded.body) as { payloads: JsonPayload[] }).payloads[0]!), 'shown');
    const otherPage = await call(server, '/decode', {
      headers: { Origin: 'http://localhost:9999', Cookie: cookie.split(';')[0]! },
      body: { payloads: [] },
      anonymous: true,
    });
    assert.equal(otherPage.status, 403, 'another page on the same site is refused even with the cookie');
  });
});
