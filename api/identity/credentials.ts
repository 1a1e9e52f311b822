/**
 * Keystone's credentials (keystone/api/credentials.py): `/v3/credentials` create, list (`user_id`, `type`),
 * show, update, delete; and the EC2 credentials of a user (keystone/api/users.py:
 * `/v3/users/{id}/credentials/OS-EC2[/{access}]`). Keystone's default policies
 * (keystone/common/policies/credential.py, ec2_credential.py): an admin, a reader on a system-scoped token
 * (reads), or the credential's owner (an EC2 create or delete also needs `member`). A token from an
 * application credential reaches only credentials of its own project, and a restricted one makes no EC2
 * credential. Blobs are answered to those allowed, never logged nor put in an error.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import { ec2CredentialId, type Credential, type TokenContext } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, forbiddenAction, isAdmin, parseBody, queryParam, requireIdentityAuth } from './common';
import { lookups } from './lookups';
import { collectionLinks, v3Url } from './views';

const credentialFields = {
  blob: z.string(),
  project_id: z.string().min(1).max(64).nullable().optional(),
  type: z.string().min(1).max(255),
  user_id: z.string().min(1).max(64),
};
const NAMED = ['id', 'blob', 'project_id', 'type', 'user_id', 'links'];
const credentialCreate = z.object({
  credential: z.object({ ...credentialFields, id: z.string().max(64).optional() }).catchall(z.json()),
});
const credentialUpdate = z.object({
  credential: z
    .object({
      blob: credentialFields.blob.optional(),
      project_id: credentialFields.project_id,
      type: credentialFields.type.optional(),
      user_id: credentialFields.user_id.optional(),
      id: z.string().optional(),
    })
    .catchall(z.json())
    .refine((c) => Object.keys(c).length > 0, 'at least one property is required'),
});
const ec2Create = z.object({ tenant_id: z.string().min(1).max(64) });

type Json = z.core.util.JSONType;
const extras = (body: Record<string, unknown>): Record<string, Json> =>
  Object.fromEntries(Object.entries(body).filter(([k]) => !NAMED.includes(k))) as Record<string, Json>;

const systemReader = (caller: TokenContext) => caller.system === true && caller.roles.includes('reader');

/**
 * Keystone's _check_credential_project_scope: a delegated token (here: from an application credential)
 * reaches only the credentials of the project it is scoped to.
 */
function delegationAllows(caller: TokenContext, projectId: string | null): boolean {
  return !caller.applicationCredential || projectId === (caller.project?.id ?? null);
}
const delegationRefused = (what: string) =>
  forbiddenAction(`${what} project does not match the project scope of the delegated token`);

/** Keystone's _check_unrestricted_application_credential. */
function checkUnrestricted(caller: TokenContext, what: string): void {
  if (caller.applicationCredential && !caller.applicationCredential.unrestricted)
    throw forbiddenAction(
      `Using method 'application_credential' is not allowed for managing additional ${what}`,
    );
}

export async function credentialRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const credentials = deps.cloud.keystone.credentials;
  const { userById, projectById } = lookups(deps.cloud.keystone);
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const params = (request: FastifyRequest) => request.params as Record<string, string>;

  const view = (c: Credential) => ({
    ...c.extra,
    id: c.id,
    user_id: c.userId,
    project_id: c.projectId,
    type: c.type,
    blob: c.blob,
    links: { self: v3Url(deps, `/credentials/${c.id}`) },
  });

  /** ADMIN_OR_SYSTEM_READER_OR_CRED_OWNER (reads) or ADMIN_OR_CRED_OWNER (writes). */
  const allowed = (caller: TokenContext, ownerId: string | undefined, read: boolean) =>
    isAdmin(caller) || (read && systemReader(caller)) || (ownerId !== undefined && ownerId === caller.userId);

  /** The path's credential once the caller may act on it: 403 before 404, as Keystone's target is empty. */
  async function credentialFor(request: FastifyRequest, action: string, read: boolean): Promise<Credential> {
    const caller = callerOf(request);
    const id = params(request).credentialId!;
    let credential: Credential | undefined;
    try {
      credential = await credentials.getCredential(id);
    } catch (err) {
      if (!isCloudError(err, 'NotFound') && !isCloudError(err, 'BadRequest')) throw err;
    }
    if (!allowed(caller, credential?.userId, read)) throw forbiddenAction(action);
    if (!credential) throw new ApiError(404, `Could not find credential: ${id}.`, 'NotFound');
    if (!delegationAllows(caller, credential.projectId)) throw delegationRefused('Credential');
    return credential;
  }

  app.get('/v3/credentials', authenticated, async (request) => {
    const caller = callerOf(request);
    const [userId, type] = [queryParam(request, 'user_id'), queryParam(request, 'type')];
    const all = await credentials.listCredentials({
      ...(userId !== undefined ? { userId } : {}),
      ...(type !== undefined ? { type } : {}),
    });
    // Keystone filters the list by identity:get_credential on each one.
    const visible = all.filter(
      (c) => allowed(caller, c.userId, true) && delegationAllows(caller, c.projectId),
    );
    return { credentials: visible.map(view), links: collectionLinks(deps, '/credentials') };
  });

  app.post('/v3/credentials', authenticated, async (request, reply) => {
    const caller = callerOf(request);
    const { credential: body } = parseBody(credentialCreate, request.body);
    if (!allowed(caller, body.user_id, false)) throw forbiddenAction('identity:create_credential');
    if (body.type.toLowerCase() === 'ec2') checkUnrestricted(caller, 'credentials.');
    if (!delegationAllows(caller, body.project_id ?? null)) throw delegationRefused('Credential');
    const created = await credentials.createCredential({
      userId: body.user_id,
      type: body.type,
      blob: body.blob,
      ...(body.project_id !== undefined ? { projectId: body.project_id } : {}),
      ...(body.id !== undefined && body.id !== '' ? { id: body.id } : {}),
      extra: extras(body),
    });
    return reply.code(201).send({ credential: view(created) });
  });

  app.get('/v3/credentials/:credentialId', authenticated, async (request) => ({
    credential: view(await credentialFor(request, 'identity:get_credential', true)),
  }));

  app.patch('/v3/credentials/:credentialId', authenticated, async (request) => {
    const current = await credentialFor(request, 'identity:update_credential', false);
    const { credential: body } = parseBody(credentialUpdate, request.body);
    if (body.id !== undefined && body.id !== current.id)
      throw new ApiError(400, 'Cannot change ID', 'ValidationError');
    // Checked again on the credential as it would be: no handing one to another user.
    if (!allowed(callerOf(request), body.user_id ?? current.userId, false))
      throw forbiddenAction('identity:update_credential');
    const updated = await credentials.updateCredential({
      id: current.id,
      ...(body.blob !== undefined ? { blob: body.blob } : {}),
      ...(body.type !== undefined ? { type: body.type } : {}),
      ...(body.user_id !== undefined ? { userId: body.user_id } : {}),
      ...(body.project_id !== undefined ? { projectId: body.project_id } : {}),
      extra: extras(body),
    });
    return { credential: view(updated) };
  });

  app.delete('/v3/credentials/:credentialId', authenticated, async (request, reply) => {
    const current = await credentialFor(request, 'identity:delete_credential', false);
    await credentials.deleteCredential(current.id);
    return reply.code(204).send();
  });

  // ---- EC2 credentials (OS-EC2) --------------------------------------------------------------------------

  const ec2View = (c: Credential) => {
    const blob = JSON.parse(c.blob) as Record<string, unknown>;
    return {
      user_id: c.userId,
      tenant_id: c.projectId,
      access: blob.access,
      secret: blob.secret,
      trust_id: blob.trust_id ?? null,
      links: { self: v3Url(deps, `/users/${c.userId}/credentials/OS-EC2/${String(blob.access)}`) },
    };
  };
  const ec2Path = '/v3/users/:userId/credentials/OS-EC2';

  app.get(ec2Path, authenticated, async (request) => {
    const caller = callerOf(request);
    const userId = params(request).userId!;
    if (!isAdmin(caller) && !systemReader(caller) && caller.userId !== userId)
      throw forbiddenAction('identity:ec2_list_credentials');
    await userById(userId);
    const list = (await credentials.listCredentials({ userId, type: 'ec2' })).filter((c) =>
      delegationAllows(caller, c.projectId),
    );
    return {
      credentials: list.map(ec2View),
      links: collectionLinks(deps, `/users/${userId}/credentials/OS-EC2`),
    };
  });

  /** ADMIN_OR_MEMBER_AND_CRED_OWNER: an admin, or the owner holding `member`. */
  const memberOwner = (caller: TokenContext, ownerId: string | undefined) =>
    isAdmin(caller) || (caller.roles.includes('member') && ownerId === caller.userId);

  app.post(ec2Path, authenticated, async (request, reply) => {
    const caller = callerOf(request);
    const userId = params(request).userId!;
    if (!memberOwner(caller, userId)) throw forbiddenAction('identity:ec2_create_credential');
    checkUnrestricted(caller, 'credentials.');
    await userById(userId);
    const { tenant_id: projectId } = parseBody(ec2Create, request.body);
    await projectById(projectId);
    if (!delegationAllows(caller, projectId)) throw delegationRefused('EC2 credential');
    return reply
      .code(201)
      .send({ credential: ec2View(await credentials.createEc2Credential(userId, projectId)) });
  });

  /**
   * The access key's credential: missing is 404 before any policy check (Keystone builds the policy target
   * from it, and that lookup's CredentialNotFound comes first); not an ec2 credential of this user, 401 "EC2
   * access key not found.".
   */
  async function ec2For(request: FastifyRequest, action: string, read: boolean): Promise<Credential> {
    const caller = callerOf(request);
    const { userId, access } = params(request) as { userId: string; access: string };
    const id = ec2CredentialId(access);
    const credential = await credentials.getCredential(id).catch((err: unknown) => {
      if (isCloudError(err, 'NotFound'))
        throw new ApiError(404, `Could not find credential: ${id}.`, 'NotFound');
      throw err;
    });
    const ok = read ? allowed(caller, credential.userId, true) : memberOwner(caller, credential.userId);
    if (!ok) throw forbiddenAction(action);
    await userById(userId);
    if (credential.type !== 'ec2' || credential.userId !== userId)
      throw new ApiError(401, 'EC2 access key not found.', 'Unauthorized');
    if (!delegationAllows(caller, credential.projectId)) throw delegationRefused('EC2 credential');
    return credential;
  }

  app.get(`${ec2Path}/:access`, authenticated, async (request) => ({
    credential: ec2View(await ec2For(request, 'identity:ec2_get_credential', true)),
  }));

  app.delete(`${ec2Path}/:access`, authenticated, async (request, reply) => {
    const credential = await ec2For(request, 'identity:ec2_delete_credential', false);
    await credentials.deleteCredential(credential.id);
    return reply.code(204).send();
  });
}
