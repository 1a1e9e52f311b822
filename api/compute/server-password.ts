/**
 * /servers/{id}/os-server-password (nova/api/openstack/compute/server_password.py): the encrypted password
 * a guest posted to the metadata service (a reader), and its clearing (a member, 204). bootflow serves no
 * metadata service, so no guest ever posts one: the password is always "" and clearing has nothing to
 * clear; the server is still looked up and the policy checked as Nova does.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { visibleInstance } from './servers';

export async function serverPasswordRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/servers/:id/os-server-password', async (request) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    await visibleInstance(deps, ctx, id, 'os_compute_api:os-server-password:show');
    return { password: '' };
  });
  app.delete('/servers/:id/os-server-password', async (request, reply: FastifyReply) => {
    const { ctx } = authOf(request);
    const { id } = request.params as { id: string };
    await visibleInstance(deps, ctx, id, 'os_compute_api:os-server-password:clear');
    return reply.code(204).send();
  });
}
