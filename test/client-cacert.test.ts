/**
 * The client's Keystone exchange against an https OS_AUTH_URL (the api role started with --tls-cert and
 * --tls-key): a certificate the system does not trust is refused with a message naming --os-cacert /
 * OS_CACERT, and with that CA bundle the password is exchanged for a token Keystone validates.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApiServer, type ApiServer } from '../api';
import { caCertFileOf, issueToken } from '../lib/command-line/keystone';
import { UserError } from '../lib/command-line/usage';
import { openApiTestEnv, type ApiTestEnv } from './helpers/api';

/** A self-signed certificate for 127.0.0.1 (its own CA), made with openssl. */
function selfSignedCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'pipe' },
    );
  } catch (err) {
    throw new Error('openssl is needed to make a test certificate (apt-get install openssl)', {
      cause: err,
    });
  }
  return { cert, key };
}

describe('client: OS_CACERT / --os-cacert for an https Keystone', () => {
  let env: ApiTestEnv;
  let server: ApiServer;
  let dir: string;
  let cert: string;
  const credentials = { username: 'tls-user', password: 'tls-secret', projectName: 'tls-project' };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'bootflow-cacert-'));
    const pair = selfSignedCertificate(dir);
    cert = pair.cert;
    env = await openApiTestEnv({ services: ['identity'], label: 'client-cacert' });
    const ks = env.cloud.keystone;
    await ks.ensureProject({ name: credentials.projectName });
    await ks.ensureUser({ name: credentials.username, password: credentials.password });
    await ks.assignRole({ user: credentials.username, project: credentials.projectName, role: 'member' });
    server = await startApiServer(env.deps, {
      host: '127.0.0.1',
      port: 0,
      services: ['identity'],
      tls: { certFile: pair.cert, keyFile: pair.key },
    });
  });
  after(async () => {
    await server?.close();
    await env?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('an untrusted certificate is refused, naming the option that fixes it', async () => {
    assert.match(server.url, /^https:\/\//);
    await assert.rejects(issueToken(`${server.url}/identity`, credentials), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\).*--os-cacert or OS_CACERT/);
      assert.ok(!err.message.includes(credentials.password));
      return true;
    });
  });

  test('with the CA bundle the password becomes a token that Keystone validates', async () => {
    const token = await issueToken(`${server.url}/identity/v3`, credentials, { caCertFile: cert });
    const ctx = await env.cloud.keystone.validateToken(token);
    assert.equal(ctx.userName, credentials.username);
    assert.equal(ctx.projectName, credentials.projectName);
  });

  test('an unreadable bundle is a usage error; the flag wins over OS_CACERT', async () => {
    await assert.rejects(
      issueToken(`${server.url}/identity`, credentials, { caCertFile: path.join(dir, 'missing.pem') }),
      /Cannot read the CA bundle OS_CACERT=.*missing\.pem/,
    );
    assert.equal(caCertFileOf('flag.pem', { OS_CACERT: 'env.pem' }), 'flag.pem');
    assert.equal(caCertFileOf(undefined, { OS_CACERT: 'env.pem' }), 'env.pem');
    assert.equal(caCertFileOf(undefined, {}), undefined);
  });
});
