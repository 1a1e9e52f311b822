/**
 * x509 key pairs (Nova's `type: x509`, nova/crypto.py): a certificate for WinRM's passwordless login,
 * generated with the openssl CLI exactly as generate_winrm_x509_cert does (RSA 2048, ten years,
 * CN=<user id>, clientAuth and the user principal name), the private key answered once as a base64 PKCS#12
 * with an empty password and never stored; the fingerprint is the certificate's SHA-1 in colon-separated hex.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CloudError } from '../errors';

const run = promisify(execFile);

/** nova/crypto.py generate_x509_fingerprint; InvalidKeypair (400) for anything that is not a PEM certificate. */
export function x509Fingerprint(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint.toLowerCase();
  } catch (err) {
    throw new CloudError(
      'BadRequest',
      `Keypair data is invalid: failed to generate X509 fingerprint. Error message: ${(err as Error).message}`,
    );
  }
}

/** A new certificate and its private key, as Nova's generate_winrm_x509_cert makes them. */
export async function generateX509KeyPair(
  userId: string,
): Promise<{ certificate: string; privateKey: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nova-x509-'));
  try {
    const keyFile = join(dir, 'temp.key');
    const confFile = join(dir, 'temp.conf');
    await writeFile(
      confFile,
      'distinguished_name  = req_distinguished_name\n[req_distinguished_name]\n[v3_req_client]\n' +
        'extendedKeyUsage = clientAuth\n' +
        `subjectAltName = otherName:1.3.6.1.4.1.311.20.2.3;UTF8:${userId}@localhost\n`,
      { mode: 0o600 },
    );
    const cert = await run('openssl', [
      'req',
      '-x509',
      '-nodes',
      '-days',
      '3650',
      '-config',
      confFile,
      '-newkey',
      'rsa:2048',
      '-outform',
      'PEM',
      '-keyout',
      keyFile,
      '-subj',
      `/CN=${userId}`,
      '-extensions',
      'v3_req_client',
    ]);
    const certificate = cert.stdout;
    const p12 = await runWithInput(
      ['pkcs12', '-export', '-inkey', keyFile, '-password', 'pass:'],
      certificate,
    );
    return { certificate, privateKey: p12.toString('base64') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function runWithInput(args: string[], input: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'buffer', maxBuffer: 1 << 20 }, (err, stdout) =>
      err ? reject(err) : resolve(stdout),
    );
    child.stdin?.end(input);
  });
}
