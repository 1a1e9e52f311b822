/**
 * In-process harnesses describe a caller as tests always have (a user's password, or a token), and turn that
 * into what a workflow now carries, as client.ts and the API do: Keystone's operation grant for the one
 * workflow being started. A caller Keystone refuses gets a grant no Keystone signed, so the workflow fails
 * at `authenticate` with Unauthorized, as a refused password used to. A malformed `auth` is left as it is,
 * for the workflow's input schema to refuse (BadRequest).
 */
import type { WorkflowClientInterceptor, WorkflowStartInput } from '@temporalio/client';
import type { Keystone } from '../../cloud/keystone';

const CREDENTIAL_KEYS = new Set([
  'username',
  'password',
  'projectName',
  'userDomainName',
  'projectDomainName',
]);

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function wellFormedCredentials(
  value: unknown,
): value is { username: string; password: string; projectName: string } {
  return (
    isObject(value) &&
    Object.keys(value).every((k) => CREDENTIAL_KEYS.has(k)) &&
    ['username', 'password', 'projectName'].every((k) => typeof value[k] === 'string' && value[k] !== '')
  );
}

/** A grant Keystone never signed: what a caller with refused credentials ends up presenting. */
export const REFUSED_GRANT = 'refused.caller.grant';

/** `request` with its `auth` (credentials or token) exchanged for a grant for `workflowType`/`workflowId`. */
export async function withGrant(
  keystone: Keystone,
  request: unknown,
  workflowType: string,
  workflowId: string,
): Promise<unknown> {
  if (!isObject(request) || !isObject(request.auth)) return request;
  const auth = request.auth;
  const keys = Object.keys(auth);
  let token: string | undefined;
  if (keys.length === 1 && keys[0] === 'credentials' && wellFormedCredentials(auth.credentials)) {
    token = await keystone
      .authenticate(auth.credentials)
      .then((r) => r.token)
      .catch(() => undefined);
    if (token === undefined) return { ...request, auth: { grant: REFUSED_GRANT } };
  } else if (keys.length === 1 && keys[0] === 'token' && typeof auth.token === 'string' && auth.token) {
    token = auth.token;
  } else {
    return request;
  }
  const grant = await keystone
    .issueGrant(token, { workflowType, workflowId })
    .then((g) => g.grant)
    .catch(() => REFUSED_GRANT);
  return { ...request, auth: { grant } };
}

/**
 * A client interceptor doing that for every workflow start of a test's client: tests keep describing callers
 * by password or token, and each workflow still receives only a grant for itself.
 */
export function grantingInterceptor(
  keystone: () => Keystone | undefined,
  /** Runs first: a harness brings its cloud's clock up to the test server's (skipped) time. */
  beforeGrant: () => Promise<void> = async () => undefined,
): WorkflowClientInterceptor {
  const granted = async (input: WorkflowStartInput): Promise<WorkflowStartInput> => {
    const ks = keystone();
    if (!ks) return input;
    await beforeGrant();
    const [request, ...rest] = input.options.args;
    const args = [await withGrant(ks, request, input.workflowType, input.options.workflowId), ...rest];
    return { ...input, options: { ...input.options, args } };
  };
  return {
    start: async (input, next) => next(await granted(input)),
    startWithDetails: async (input, next) => next(await granted(input)),
  };
}
