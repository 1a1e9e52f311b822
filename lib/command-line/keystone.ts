/**
 * The client's side of Keystone v3 password authentication, as python-openstackclient does it: the password
 * goes to `POST <OS_AUTH_URL>/v3/auth/tokens` (project-scoped) and only the token that comes back in
 * `X-Subject-Token` is kept; workflows get only an operation grant made from it for each one (issueGrant),
 * so neither a password nor a reusable token is ever stored in a Temporal history.
 */
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

/** Keystone's error body `{"error": {"code", "title", "message"}}` as one line, OpenStack-client style. */
async function keystoneRefusal(response: Response): Promise<string> {
  let title = response.statusText || 'Error';
  let message = '';
  try {
    const body = (await response.json()) as { error?: { title?: unknown; message?: unknown } };
    if (typeof body.error?.title === 'string') title = body.error.title;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    // Not Keystone's JSON: the status line says enough.
  }
  return `${title}: ${message || 'Keystone refused the credentials.'} (HTTP ${response.status})`;
}

/**
 * Exchanges a token for an operation grant at `<OS_AUTH_URL>/v3/auth/OS-BOOTFLOW/grants`: what a workflow's
 * input carries instead of the token, good for that one workflow (its type and id) until the token expires.
 */
export async function issueGrant(
  authUrl: string,
  token: string,
  workflow: { workflowType: string; workflowId: string },
): Promise<string> {
  const url = tokensUrl(authUrl).replace(/\/tokens$/, '/OS-BOOTFLOW/grants');
  const response = await keystoneFetch(authUrl, url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'x-auth-token': token },
    body: JSON.stringify({
      grant: { workflow_type: workflow.workflowType, workflow_id: workflow.workflowId },
    }),
  });
  if (response.status !== 201) throw new UserError(await keystoneRefusal(response), EXIT.FAILED);
  const body = (await response.json()) as { grant?: { id?: unknown } };
  if (typeof body.grant?.id !== 'string') {
    throw new UserError(`Keystone at OS_AUTH_URL=${authUrl} answered without a grant`, EXIT.FAILED);
  }
  return body.grant.id;
}

/** fetch() to Keystone, with one clear error when it cannot be reached. */
async function keystoneFetch(authUrl: string, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(KEYSTONE_TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    const why = typeof cause?.code === 'string' ? cause.code : (err as Error).message;
    throw new UserError(
      `Keystone is unreachable at OS_AUTH_URL=${authUrl} (${why}): is the api role running (\`npm start\`)?`,
      EXIT.UNAVAILABLE,
    );
  }
}

/** Exchanges password credentials for a project-scoped token at the Keystone API named by `authUrl`. */
export async function issueToken(authUrl: string, credentials: PasswordCredentials): Promise<string> {
  const url = tokensUrl(authUrl);
  const response = await keystoneFetch(authUrl, url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(passwordAuthBody(credentials)),
  });
  if (response.status !== 201 && response.status !== 200) {
    throw new UserError(await keystoneRefusal(response), EXIT.FAILED);
  }
  const token = response.headers.get('x-subject-token');
  await response.body?.cancel();
  if (!token) {
    throw new UserError(
      `Keystone at OS_AUTH_URL=${authUrl} answered without an X-Subject-Token`,
      EXIT.FAILED,
    );
  }
  return token;
}
