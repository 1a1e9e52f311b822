/**
 * /os-server-groups (nova/api/openstack/compute/server_groups.py, schemas/server_groups.py): create, list,
 * show, delete. Before 2.64 a group has `policies` (one of affinity / anti-affinity; the soft ones from
 * 2.15) and an empty `metadata`; from 2.64 `policy` and `rules` (max_server_per_host, anti-affinity only).
 * `project_id` / `user_id` from 2.13. Members are the group's live servers (booted with the `group`
 * scheduler hint). Policies are Nova's defaults; another project's group is a 403, as Nova checks the
 * policy against the group's project after finding it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import type { ServerGroup } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, isAdmin, MAX_LIMIT, parseBody, queryOf } from './common';
import { atLeast } from './microversion';
import { serverNameSchema } from './server-schema';

const HARD = ['anti-affinity', 'affinity'] as const;
const ALL = ['anti-affinity', 'affinity', 'soft-anti-affinity', 'soft-affinity'] as const;

/** jsonschema's enum error, as Nova words it (Python's repr of the value). */
const oneOf = (values: readonly string[]) => ({
  error: (issue: { input: unknown }) =>
    `${typeof issue.input === 'string' ? `'${issue.input}'` : JSON.stringify(issue.input)} is not one of [${values.map((v) => `'${v}'`).join(', ')}]`,
});

function createSchema(request: FastifyRequest) {
  if (atLeast(request, 2, 64)) {
    return z.strictObject({
      server_group: z.strictObject({
        name: serverNameSchema,
        policy: z.enum(ALL, oneOf(ALL)),
        rules: z
          .strictObject({
            max_server_per_host: z
              .union([z.number().int(), z.string().regex(/^[0-9]+$/)])
              .transform(Number)
              .pipe(z.number().min(1).max(2147483647)),
          })
          .partial()
          .optional(),
      }),
    });
  }
  const allowed = atLeast(request, 2, 15) ? ALL : HARD;
  return z.strictObject({
    server_group: z.strictObject({
      name: serverNameSchema,
      policies: z
        .array(z.enum(allowed, oneOf(allowed)))
        .min(1)
        .max(1),
    }),
  });
}

type CreateBody =
  | { server_group: { name: string; policy: (typeof ALL)[number]; rules?: { max_server_per_host?: number } } }
  | { server_group: { name: string; policies: Array<(typeof ALL)[number]> } };

/** _format_server_group: the fields of the microversion served. */
function groupView(request: FastifyRequest, group: ServerGroup) {
  return {
    id: group.uuid,
    name: group.name,
    ...(atLeast(request, 2, 64)
      ? { policy: group.policy, rules: group.rules }
      : { policies: [group.policy], metadata: {} }),
    members: group.members,
    ...(atLeast(request, 2, 13) ? { project_id: group.projectId, user_id: group.userId } : {}),
  };
}

/** common.get_limit_and_offset: non-negative integers (400 otherwise), limit capped at max_limit. */
function limitAndOffset(request: FastifyRequest): { limit: number; offset: number } {
  const q = queryOf(request);
  const parse = (name: 'limit' | 'offset', fallback: number): number => {
    const raw = q[name];
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw)) {
      throw new ApiError(
        400,
        `Invalid input for query parameters ${name}. Value: ${raw}. '${raw}' does not match '^[0-9]*$'`,
      );
    }
    return Number(raw);
  };
  // common.limited: `limit or max_limit`, so 0 is the maximum.
  return { limit: Math.min(parse('limit', MAX_LIMIT) || MAX_LIMIT, MAX_LIMIT), offset: parse('offset', 0) };
}

/** Unknown query parameters are refused from 2.75 (server_groups_query_param_275). */
function checkIndexQuery(request: FastifyRequest): void {
  if (!atLeast(request, 2, 75)) return;
  const extra = Object.keys(queryOf(request)).filter((k) => !['all_projects', 'limit', 'offset'].includes(k));
  if (extra.length > 0) {
    const keys = extra.map((k) => `'${k}'`).join(', ');
    throw new ApiError(
      400,
      `Invalid input for query parameters ${extra[0]}. Value: ${queryOf(request)[extra[0]!]}. Additional properties are not allowed (${keys} ${extra.length === 1 ? 'was' : 'were'} unexpected)`,
    );
  }
}

async function findGroup(deps: ApiDeps, id: string): Promise<ServerGroup> {
  try {
    return await deps.cloud.nova.getServerGroup(id);
  } catch (err) {
    if (err instanceof CloudError && err.type === 'NotFound') throw new ApiError(404, err.message);
    throw err;
  }
}

export async function serverGroupRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { nova } = deps.cloud;

  app.get('/os-server-groups', async (request) => {
    const { ctx } = authOf(request);
    checkIndexQuery(request);
    const { limit, offset } = limitAndOffset(request);
    enforcePolicy(ctx, 'os_compute_api:os-server-groups:index', ctx.projectId);
    // Nova: all_projects is honoured for an admin only; anyone else gets their own project's groups.
    const all = 'all_projects' in queryOf(request) && isAdmin(ctx);
    if (all) enforcePolicy(ctx, 'os_compute_api:os-server-groups:index:all_projects', ctx.projectId);
    const groups = await nova.listServerGroups({
      ...(all ? {} : { projectId: ctx.projectId }),
      limit,
      offset,
    });
    return { server_groups: groups.map((g) => groupView(request, g)) };
  });

  app.post('/os-server-groups', async (request) => {
    const { ctx } = authOf(request);
    // Nova's schema decorator runs before the handler's policy check: a bad body is 400 for anyone.
    const body = parseBody(createSchema(request), request.body) as CreateBody;
    enforcePolicy(ctx, 'os_compute_api:os-server-groups:create', ctx.projectId);
    const sg = body.server_group;
    const policy = 'policy' in sg ? sg.policy : sg.policies[0]!;
    const rules = 'policy' in sg ? (sg.rules ?? {}) : {};
    if (policy !== 'anti-affinity' && Object.keys(rules).length > 0)
      throw new ApiError(400, 'Only anti-affinity policy supports rules.');
    try {
      const group = await nova.createServerGroup({
        name: sg.name,
        projectId: ctx.projectId,
        userId: ctx.userId,
        policy,
        rules,
      });
      return { server_group: groupView(request, group) };
    } catch (err) {
      if (err instanceof CloudError && err.type === 'QuotaExceeded') throw new ApiError(403, err.message);
      throw err;
    }
  });

  app.get('/os-server-groups/:id', async (request) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    const group = await findGroup(deps, id);
    enforcePolicy(ctx, 'os_compute_api:os-server-groups:show', group.projectId);
    return { server_group: groupView(request, group) };
  });

  app.delete('/os-server-groups/:id', async (request, reply) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    const group = await findGroup(deps, id);
    enforcePolicy(ctx, 'os_compute_api:os-server-groups:delete', group.projectId);
    try {
      await nova.deleteServerGroup(group.uuid);
    } catch (err) {
      if (err instanceof CloudError && err.type === 'NotFound') throw new ApiError(404, err.message);
      throw err;
    }
    return reply.code(204).send();
  });
}
