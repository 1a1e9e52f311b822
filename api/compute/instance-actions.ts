/**
 * /servers/{id}/os-instance-actions (nova/api/openstack/compute/instance_actions.py): what was done to a
 * server, newest first, with the events cloud/nova/actions.ts records. Events are shown to an admin, and
 * from 2.51 to everyone allowed to see the action, without their details (Nova's traceback) unless
 * admin; from 2.62 each event has the host (admin) and hostId; deleted servers' actions from 2.21.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RequestContext } from '../../cloud/keystone';
import type { Instance, InstanceAction } from '../../cloud/nova';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { can, enforcePolicy, naiveTime, nextLink, paginate, parseLimit, queryOf } from './common';
import { atLeast } from './microversion';
import { hostIdOf } from './server-view';

async function instanceOf(
  deps: ApiDeps,
  request: FastifyRequest,
  ctx: RequestContext,
  id: string,
  rule: 'os_compute_api:os-instance-actions:list' | 'os_compute_api:os-instance-actions:show',
): Promise<Instance> {
  const notFound = new ApiError(404, `Instance ${id} could not be found.`);
  const instance = await deps.cloud.nova
    .getInstance(id, { includeDeleted: atLeast(request, 2, 21) })
    .catch(() => {
      throw notFound;
    });
  if (!can(ctx, rule, instance.projectId)) {
    if (instance.projectId !== ctx.projectId) throw notFound;
    enforcePolicy(ctx, rule, instance.projectId);
  }
  return instance;
}

function actionView(request: FastifyRequest, action: InstanceAction) {
  return {
    action: action.action,
    instance_uuid: action.instanceUuid,
    message: action.message,
    project_id: action.projectId,
    request_id: action.requestId,
    start_time: naiveTime(action.startTime),
    user_id: action.userId,
    ...(atLeast(request, 2, 58) ? { updated_at: naiveTime(action.finishTime ?? action.startTime) } : {}),
  };
}

export async function instanceActionRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/servers/:id/os-instance-actions', async (request) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    const instance = await instanceOf(deps, request, ctx, id, 'os_compute_api:os-instance-actions:list');
    const actions = (await deps.cloud.nova.listActions(instance.uuid)).sort(
      (a, b) => b.startTime - a.startTime,
    );
    if (!atLeast(request, 2, 58)) return { instanceActions: actions.map((a) => actionView(request, a)) };
    const q = queryOf(request);
    const { page, more } = paginate(actions, (a) => a.requestId, parseLimit(q.limit), q.marker);
    return {
      instanceActions: page.map((a) => actionView(request, a)),
      ...(more
        ? {
            links: nextLink(
              deps,
              request,
              `servers/${instance.uuid}/os-instance-actions`,
              page.at(-1)!.requestId,
            ),
          }
        : {}),
    };
  });

  app.get('/servers/:id/os-instance-actions/:requestId', async (request) => {
    const { ctx } = authOf(request);
    const { id, requestId } = request.params as { id: string; requestId: string };
    const instance = await instanceOf(deps, request, ctx, id, 'os_compute_api:os-instance-actions:show');
    const action = (await deps.cloud.nova.listActions(instance.uuid)).find((a) => a.requestId === requestId);
    if (!action)
      throw new ApiError(404, `Action for request_id ${requestId} on instance ${instance.uuid} not found`);
    const view: Record<string, unknown> = actionView(request, action);
    const admin = can(ctx, 'os_compute_api:os-instance-actions:events', instance.projectId);
    if (admin || atLeast(request, 2, 51)) {
      view.events = action.events.map((e) => ({
        event: e.event,
        start_time: naiveTime(e.startTime),
        finish_time: naiveTime(e.finishTime),
        result: e.result,
        ...(admin ? { traceback: e.details } : {}),
        ...(atLeast(request, 2, 62)
          ? { ...(admin ? { host: e.host ?? '' } : {}), hostId: hostIdOf(e.host, instance.projectId) }
          : {}),
      }));
    }
    return { instanceAction: view };
  });
}
