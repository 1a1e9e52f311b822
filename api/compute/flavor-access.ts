/**
 * os-flavor-access (nova/api/openstack/compute/flavor_access.py, schemas/flavor_access.py): a private
 * flavor's access list (`GET /flavors/{id}/os-flavor-access`) and the `addTenantAccess` /
 * `removeTenantAccess` actions of `POST /flavors/{id}/action`, admin only by Nova's defaults. Each answers
 * `{"flavor_access": [{"flavor_id", "tenant_id"}]}`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, orNotFound, parseBody } from './common';
import { flavorById } from './flavors';
import { atLeast } from './microversion';
import { verifyProjectId } from './quota-sets';

const tenant = z.strictObject({ tenant: z.string().min(1).max(255) });
const addSchema = z.strictObject({ addTenantAccess: tenant });
const removeSchema = z.strictObject({ removeTenantAccess: tenant });

function accessBody(flavorId: string, projects: string[]) {
  return { flavor_access: projects.map((p) => ({ flavor_id: flavorId, tenant_id: p })) };
}

/** A CloudError of the access list as Nova's controller answers it (404, 409). */
function answered(err: unknown): never {
  if (err instanceof CloudError && (err.code === 404 || err.code === 409))
    throw new ApiError(err.code, err.message);
  throw err;
}

type FlavorAction = (deps: ApiDeps, request: FastifyRequest, id: string) => Promise<unknown>;

/** _add_tenant_access: the body, the policy, the project (Keystone's), the flavor, then the row. */
const addTenantAccess: FlavorAction = async (deps, request, id) => {
  const { ctx } = authOf(request);
  const { tenant: projectId } = parseBody(addSchema, request.body).addTenantAccess;
  enforcePolicy(ctx, 'os_compute_api:os-flavor-access:add_tenant_access');
  await verifyProjectId(deps, projectId);
  await flavorById(deps, ctx, id);
  const projects = await deps.cloud.nova
    .addFlavorAccess({ flavorId: id, projectId, refusePublic: atLeast(request, 2, 7) })
    .catch(answered);
  return accessBody(id, projects);
};

/** _remove_tenant_access: a project Keystone does not know may still be removed, so it is not checked. */
const removeTenantAccess: FlavorAction = async (deps, request, id) => {
  const { ctx } = authOf(request);
  const { tenant: projectId } = parseBody(removeSchema, request.body).removeTenantAccess;
  enforcePolicy(ctx, 'os_compute_api:os-flavor-access:remove_tenant_access');
  await flavorById(deps, ctx, id);
  const projects = await deps.cloud.nova.removeFlavorAccess({ flavorId: id, projectId }).catch(answered);
  return accessBody(id, projects);
};

const FLAVOR_ACTIONS: Record<string, FlavorAction> = { addTenantAccess, removeTenantAccess };

export async function flavorAccessRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/flavors/:id/os-flavor-access', async (request) => {
    const { ctx } = authOf(request);
    enforcePolicy(ctx, 'os_compute_api:os-flavor-access');
    const { id } = request.params as { id: string };
    await flavorById(deps, ctx, id);
    const projects = await orNotFound(
      deps.cloud.nova.listFlavorAccess(id),
      'Access list not available for public flavors.',
    );
    return accessBody(id, projects);
  });
  app.post('/flavors/:id/action', async (request) => {
    const { id } = request.params as { id: string };
    const body = request.body;
    const name =
      typeof body === 'object' && body !== null && !Array.isArray(body) ? Object.keys(body)[0] : undefined;
    if (name === undefined) throw new ApiError(400, 'The request body must name one action.');
    const action = Object.hasOwn(FLAVOR_ACTIONS, name) ? FLAVOR_ACTIONS[name] : undefined;
    if (!action) throw new ApiError(400, `There is no such action: ${name}`);
    return action(deps, request, id);
  });
}
