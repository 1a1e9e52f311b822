/**
 * The client's side of Keystone v3 password authentication, as python-openstackclient does it: the password
 * goes to `POST <OS_AUTH_URL>/v3/auth/tokens` (project-scoped) and only the token that comes back in
 * `X-Subject-Token` is kept; workflows get only an operation grant made from it for each one (issueGrant),
 * so neither a password nor a reusable token is ever stored in a Temporal history.
 */
import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PasswordCredentials } from '../../workflows/types';
import { EXIT, UserError } from './usage';

/** How long Keystone may take to answer before the client calls it unreachable. */
const KEYSTONE_TIMEOUT_MS = 30_000;

/** `<OS_AUTH_URL>/v3/auth/tokens`, whether OS_AUTH_URL names the identity root or its /v3 already. */
export function tokensUrl(authUrl: string): string {
  const base = authUrl.replace(/\/+$/, '');
  return `${/\/v3$/.test(base) ? base : `${base}/v3`}/auth/tokens`;
}

function passwordAuthBody(c: PasswordCredentials): unknown {
  return {
    auth: {
      identity: {
        methods: ['password'],
        password: {
          user: { name: c.username, domain: { name: c.userDomainName ?? 'Default' }, password: c.password },
        },
      },
      scope: { project: { name: c.projectName, domain: { name: c.projectDomainName ?? 'Default' } } },
    },
  };
}

/** TLS failures that a CA bundle fixes (Node's codes for a certificate it cannot trust). */
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
]);

export interface KeystoneConnection {
  /**
   * A PEM bundle of the CAs that sign Keystone's certificate, for an https OS_AUTH_URL that the system's
   * store does not trust (openstackclient's --os-cacert / OS_CACERT).
   */
  caCertFile?: string;
}

/** openstackclient's precedence: --os-cacert, then OS_CACERT. */
export function caCertFileOf(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return flag || env.OS_CACERT || undefined;
}

interface Answer {
  status: number;
  statusText: string;
  subjectToken: string | undefined;
  body: string;
}

/** One JSON POST over http or https (with the given CAs); node:https because fetch takes no CA. */
function postJson(
  url: URL,
  body: string,
  ca: Buffer | undefined,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
          ...headers,
        },
        timeout: KEYSTONE_TIMEOUT_MS,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const header = res.headers['x-subject-token'];
          resolve({
            status: res.statusCode ?? 0,
            statusText: res.statusMessage ?? '',
            subjectToken: Array.isArray(header) ? header[0] : header,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(body);
  });
}

/** Keystone's error body `{"error": {"code", "title", "message"}}` as one line, OpenStack-client style. */
function keystoneRefusal(answer: Answer): string {
  let title = answer.statusText || 'Error';
  let message = '';
  try {
    const body = JSON.parse(answer.body) as { error?: { title?: unknown; message?: unknown } };
    if (typeof body.error?.title === 'string') title = body.error.title;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not Keystone's JSON: the status line says enough.
  }
  return `${title}: ${message || 'Keystone refused the credentials.'} (HTTP ${answer.status})`;
}

/** One POST to Keystone (with the CA bundle, if any), with one clear error when it cannot be reached. */
async function keystonePost(
  authUrl: string,
  url: URL,
  body: unknown,
  connection: KeystoneConnection,
  headers: Record<string, string> = {},
): Promise<Answer> {
  let ca: Buffer | undefined;
  if (connection.caCertFile) {
    try {
      ca = await readFile(connection.caCertFile);
    } catch (err) {
      throw new UserError(
        `Cannot read the CA bundle OS_CACERT=${connection.caCertFile}: ${(err as Error).message}`,
        EXIT.USAGE,
      );
    }
  }
  try {
    return await postJson(url, JSON.stringify(body), ca, headers);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = typeof code === 'string' ? code : (err as Error).message;
    if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) {
      throw new UserError(
        `Keystone's certificate at OS_AUTH_URL=${authUrl} is not trusted (${why}): give the CA that signed ` +
          'it with --os-cacert or OS_CACERT',
        EXIT.UNAVAILABLE,
      );
    }
    throw new UserError(
      `Keystone is unreachable at OS_AUTH_URL=${authUrl} (${why}): is the api role running (\`npm start\`)?`,
      EXIT.UNAVAILABLE,
    );
  }
}

/** Exchanges password credentials for a project-scoped token at the Keystone API named by `authUrl`. */
export async function issueToken(
  authUrl: string,
  credentials: PasswordCredentials,
  connection: KeystoneConnection = {},
): Promise<string> {
  const answer = await keystonePost(
    authUrl,
    new URL(tokensUrl(authUrl)),
    passwordAuthBody(credentials),
    connection,
  );
  if (answer.status !== 201 && answer.status !== 200) {
    throw new UserError(keystoneRefusal(answer), EXIT.FAILED);
  }
  if (!answer.subjectToken) {
    throw new UserError(
      `Keystone at OS_AUTH_URL=${authUrl} answered without an X-Subject-Token`,
      EXIT.FAILED,
    );
  }
  return answer.subjectToken;
}

/**
 * Exchanges a token for an operation grant at `<OS_AUTH_URL>/v3/auth/OS-BOOTFLOW/grants`: what a workflow's
 * input carries instead of the token, good for that one workflow (its type and id) until the token expires.
 */
export async function issueGrant(
  authUrl: string,
  token: string,
  workflow: { workflowType: string; workflowId: string },
  connection: KeystoneConnection = {},
): Promise<string> {
  const url = new URL(tokensUrl(authUrl).replace(/\/tokens$/, '/OS-BOOTFLOW/grants'));
  const body = { grant: { workflow_type: workflow.workflowType, workflow_id: workflow.workflowId } };
  const answer = await keystonePost(authUrl, url, body, connection, { 'x-auth-token': token });
  if (answer.status !== 201) throw new UserError(keystoneRefusal(answer), EXIT.FAILED);
  let grant: unknown;
  try {
    grant = (JSON.parse(answer.body) as { grant?: { id?: unknown } }).grant?.id;
  } catch {
    grant = undefined;
  }
  if (typeof grant !== 'string') {
    throw new UserError(`Keystone at OS_AUTH_URL=${authUrl} answered without a grant`, EXIT.FAILED);
  }
  return grant;
}
