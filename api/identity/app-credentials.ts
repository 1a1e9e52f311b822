/**
 * Keystone's application credentials (keystone/api/users.py): `/v3/users/{id}/application_credentials`
 * create (the secret answered once), list (`name`), show, delete. Keystone's default policies
 * (keystone/common/policies/application_credential.py): only the user creates its own, from a token scoped
 * to the project the credential is for; the user, an admin or a reader on a system-scoped token reads; the
 * user or an admin deletes. A token from a restricted application credential creates or deletes none.
 * Access rules are not supported (400).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { ApplicationCredential, TokenContext } from '../../cloud/keystone';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { callerOf, forbiddenAction, isAdmin, parseBody, queryParam, requireIdentityAuth } from './common';
import { collectionLinks, v3Url } from './views';

const roleRef = z.union([
  z.object({ id: z.string().min(1).max(64) }).catchall(z.json()),
  z.object({ name: z.string().min(1).max(255) }).catchall(z.json()),
]);
const appCredCreate = z.object({
  application_credential: z.strictObject({
    name: z.string().min(1).max(255),
    description: z.string().max(4096).nullable().optional(),
    secret: z.string().min(1).max(4096).nullable().optional(),
    expires_at: z.string().nullable().optional(),
    roles: z.array(roleRef).max(256).optional(),
    unrestricted: z.boolean().nullable().optional(),
    access_rules: z.array(z.unknown()).max(0, 'access rules are not supported').optional(),
  }),
});

const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?(Z|[+-]\d{2}:?\d{2})?$/;

/**
 * Keystone's parse_expiration_date: an ISO 8601 time (UTC unless an offset is given) → epoch ms and the
 * microseconds past it.
 */
export function parseExpiresAt(value: string, nowMs: number): { ms: number; micros: number } {
  const m = ISO_8601.exec(value);
  const invalid = () =>
    new ApiError(
      400,
      `Invalid input for field 'expires_at': ${value} is not a valid ISO 8601 time`,
      'ValidationError',
    );
  if (!m) throw invalid();
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s ?? 0));
  if (Number.isNaN(ms)) throw invalid();
  let offsetMin = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2)));
  }
  const sub = Number((frac ?? '').padEnd(6, '0'));
  const at = ms - offsetMin * 60_000 + Math.floor(sub / 1000);
  if (at <= nowMs) throw new ApiError(400, "The 'expires_at' must not be before now.", 'ValidationError');
  return { ms: at, micros: sub % 1000 };
}

/** Epoch ms (+ µs) → Python's datetime.isoformat() of the naive UTC time, as Keystone answers it. */
export function formatExpiresAt(ms: number, micros: number): string {
  const iso = new Date(ms).toISOString();
  const fraction = Number(iso.slice(20, 23)) * 1000 + micros;
  const base = iso.slice(0, 19);
  return fraction === 0 ? base : `${base}.${String(fraction).padStart(6, '0')}`;
}

/** Keystone's _check_unrestricted_application_credential. */
function checkUnrestricted(caller: TokenContext): void {
  if (caller.applicationCredential && !caller.applicationCredential.unrestricted)
    throw forbiddenAction(
      "Using method 'application_credential' is not allowed for managing additional application credentials.",
    );
}

export async function appCredentialRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const keystone = deps.cloud.keystone;
  const authenticated = { preHandler: requireIdentityAuth(deps) };
  const params = (request: FastifyRequest) => request.params as { userId: string; appCredId?: string };
  const base = '/v3/users/:userId/application_credentials';

  const view = (a: ApplicationCredential, secret?: string) => ({
    id: a.id,
    name: a.name,
    description: a.description,
    expires_at: a.expiresAt === null ? null : formatExpiresAt(a.expiresAt, a.expiresAtMicros),
    project_id: a.projectId,
    roles: a.roles.map((r) => ({ id: r.id, name: r.name, domain_id: null })),
    unrestricted: a.unrestricted,
    access_rules: [],
    ...(secret !== undefined ? { secret } : {}),
    links: { self: v3Url(deps, `/users/${a.userId}/application_credentials/${a.id}`) },
  });

  /** ADMIN_OR_SYSTEM_READER_OR_OWNER (read) or ADMIN_OR_OWNER. */
  const allowed = (caller: TokenContext, ownerId: string, read: boolean) =>
    isAdmin(caller) ||
    caller.userId === ownerId ||
    (read && caller.system === true && caller.roles.includes('reader'));

  app.get(base, authenticated, async (request) => {
    const { userId } = params(request);
    if (!allowed(callerOf(request), userId, true))
      throw forbiddenAction('identity:list_application_credentials');
    const name = queryParam(request, 'name');
    const list = await keystone.listApplicationCredentials(userId, name !== undefined ? { name } : {});
    return {
      application_credentials: list.map((a) => view(a)),
      links: collectionLinks(deps, `/users/${userId}/application_credentials`),
    };
  });

  app.post(base, authenticated, async (request, reply) => {
    const caller = callerOf(request);
    const { userId } = params(request);
    if (caller.userId !== userId) throw forbiddenAction('identity:create_application_credential');
    checkUnrestricted(caller);
    const { application_credential: body } = parseBody(appCredCreate, request.body);
    if (!caller.project)
      throw new ApiError(
        400,
        'Invalid application credential: a project-scoped token is needed to create one.',
        'ValidationError',
      );
    const expiresAt =
      body.expires_at === undefined || body.expires_at === null
        ? undefined
        : parseExpiresAt(body.expires_at, deps.cloud.clock.now());
    try {
      const { appCred, secret } = await keystone.createApplicationCredential({
        userId,
        projectId: caller.project.id,
        name: body.name,
        ...(body.description !== undefined ? { description: body.description } : {}),
        ...(body.secret ? { secret: body.secret } : {}),
        ...(expiresAt !== undefined ? { expiresAt: expiresAt.ms, expiresAtMicros: expiresAt.micros } : {}),
        ...(body.unrestricted !== undefined && body.unrestricted !== null
          ? { unrestricted: body.unrestricted }
          : {}),
        ...(body.roles
          ? { roles: body.roles.map((r) => ('id' in r ? { id: String(r.id) } : { name: String(r.name) })) }
          : {}),
        tokenRoles: caller.roles,
      });
      return reply.code(201).send({ application_credential: view(appCred, secret) });
    } catch (err) {
      // A role that does not exist is Keystone's 404 RoleNotFound; an unassigned one its 400.
      if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message, 'NotFound');
      throw err;
    }
  });

  /** The path's credential (404 if none, or another user's), once the caller may act on it. */
  async function appCredFor(request: FastifyRequest, action: string, read: boolean) {
    const { userId, appCredId } = params(request);
    const appCred = await keystone.getApplicationCredential(appCredId ?? '').catch((err: unknown) => {
      if (isCloudError(err, 'BadRequest'))
        throw new ApiError(404, `Could not find Application Credential: ${appCredId}.`);
      throw err;
    });
    if (appCred.userId !== userId)
      throw new ApiError(404, `Could not find Application Credential: ${appCredId}.`, 'NotFound');
    if (!allowed(callerOf(request), appCred.userId, read)) throw forbiddenAction(action);
    return appCred;
  }

  app.get(`${base}/:appCredId`, authenticated, async (request) => ({
    application_credential: view(await appCredFor(request, 'identity:get_application_credential', true)),
  }));

  app.delete(`${base}/:appCredId`, authenticated, async (request, reply) => {
    const appCred = await appCredFor(request, 'identity:delete_application_credential', false);
    checkUnrestricted(callerOf(request));
    await keystone.deleteApplicationCredential(appCred.id);
    return reply.code(204).send();
  });
}
