/**
 * /os-security-groups and /os-security-group-rules (nova/api/openstack/compute/security_groups.py), up to
 * 2.35: Nova's proxy to Neutron's security groups, answered from and written to bootflow's Neutron as
 * nova/network/security_group_api.py calls it with the caller's token (so an admin sees every project's
 * groups, anyone else only their project's). Neutron's refusals come back as Nova turns them: a group in
 * use or the default group 400, a duplicate rule 400 (Nova's own check) or 403 (Neutron's), a group named
 * `default` 403.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import type { SecurityGroup } from '../../cloud/neutron';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { enforcePolicy, isAdmin, parseBody, queryOf } from './common';
import { isUuidLike, limited, proxyUntil, refuseEmptyId } from './proxy-common';
import { groupScopeOf, novaRule, ruleView, securityGroupViews } from './security-group-view';
import { buildIngressRule, checkCidrPrefix, sameRuleExists } from './security-group-rules';

const text = z.string().max(255);
/** schemas/security_groups.py create (and update): name and description required, extra keys ignored. */
const groupBody = z.object({ security_group: z.object({ name: text, description: text }) });
/** create_rules: the parent a uuid; the remote group a uuid or null; the rest checked by the rule's rules. */
const uuidFormat = z.string().refine(isUuidLike, { message: "is not a 'uuid'" });
const ruleBody = z.object({
  security_group_rule: z.object({
    parent_group_id: uuidFormat,
    group_id: uuidFormat.nullable().optional(),
    ip_protocol: z.unknown().optional(),
    from_port: z.unknown().optional(),
    to_port: z.unknown().optional(),
    cidr: z.unknown().optional(),
  }),
});

type GroupPolicy = 'get' | 'show' | 'create' | 'update' | 'delete' | 'rule:create' | 'rule:delete';

/** Nova checks these against the caller's own project (target project_id = context.project_id). */
function allow(ctx: RequestContext, action: GroupPolicy): void {
  enforcePolicy(ctx, `os_compute_api:os-security-groups:${action}`, ctx.projectId);
}

/** security_group_api.validate_id: 400 unless uuid-like. */
function validateId(id: string): string {
  if (!isUuidLike(id)) throw new ApiError(400, 'Security group id should be uuid');
  return id;
}

/** security_group_api.get as the caller: Neutron's 404 message. */
async function visibleGroup(deps: ApiDeps, ctx: RequestContext, id: string): Promise<SecurityGroup> {
  try {
    return await deps.cloud.neutron.securityGroups.visibleGroup(id, groupScopeOf(ctx));
  } catch (err) {
    if (isCloudError(err, 'NotFound') || isCloudError(err, 'BadRequest'))
      throw new ApiError(404, err.message);
    throw err;
  }
}

async function groupView(deps: ApiDeps, ctx: RequestContext, group: SecurityGroup) {
  const [view] = await securityGroupViews(deps.cloud.neutron, groupScopeOf(ctx), [group]);
  return { security_group: view };
}

async function listGroups(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  refuseEmptyId(request);
  const { ctx } = authOf(request);
  allow(ctx, 'get');
  const { neutron } = deps.cloud;
  // Neutron makes the project's default group on its first list; `all_tenants` is an admin's every group.
  await neutron.ensureDefaultSecurityGroup(ctx.projectId);
  const all = isAdmin(ctx) && queryOf(request).all_tenants !== undefined;
  const groups = await neutron.listSecurityGroups(all ? undefined : ctx.projectId);
  return { security_groups: await securityGroupViews(neutron, groupScopeOf(ctx), limited(groups, request)) };
}

async function showGroup(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  allow(ctx, 'show');
  const { id } = request.params as { id: string };
  return groupView(deps, ctx, await visibleGroup(deps, ctx, validateId(id)));
}

async function createGroup(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  const body = parseBody(groupBody, request.body).security_group;
  allow(ctx, 'create');
  const { neutron } = deps.cloud;
  await neutron.ensureDefaultSecurityGroup(ctx.projectId);
  try {
    const group = await neutron.securityGroups.createGroup({
      projectId: ctx.projectId,
      name: body.name,
      description: body.description,
    });
    return await groupView(deps, ctx, group);
  } catch (err) {
    // create_security_group: Neutron's 400 is Invalid (400), its 409 SecurityGroupLimitExceeded (403).
    if (isCloudError(err, 'BadRequest')) throw new ApiError(400, err.message);
    if (isCloudError(err, 'Conflict')) throw new ApiError(403, err.message);
    throw err;
  }
}

async function updateGroup(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  const body = parseBody(groupBody, request.body).security_group;
  allow(ctx, 'update');
  const { id } = request.params as { id: string };
  const group = await visibleGroup(deps, ctx, validateId(id));
  try {
    const updated = await deps.cloud.neutron.securityGroups.updateGroup(
      group.id,
      { name: body.name, description: body.description },
      groupScopeOf(ctx),
    );
    return await groupView(deps, ctx, updated);
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
    // Renaming the default group: Neutron's 409, which Nova lets through unhandled (500); bootflow says 400.
    if (isCloudError(err, 'Conflict') || isCloudError(err, 'BadRequest'))
      throw new ApiError(400, err.message);
    throw err;
  }
}

async function deleteGroup(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  allow(ctx, 'delete');
  const { id } = request.params as { id: string };
  const group = await visibleGroup(deps, ctx, validateId(id));
  try {
    await deps.cloud.neutron.securityGroups.deleteGroup(group.id, groupScopeOf(ctx));
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
    // destroy: Neutron's 409 (in use, or the default group) is Invalid, 400.
    if (isCloudError(err, 'Conflict')) throw new ApiError(400, err.message);
    throw err;
  }
}

async function createRule(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  const body = parseBody(ruleBody, request.body).security_group_rule;
  allow(ctx, 'rule:create');
  const parent = await visibleGroup(deps, ctx, body.parent_group_id);
  const groupId = body.group_id ?? null;
  const source = groupId === null ? undefined : await visibleGroup(deps, ctx, groupId);
  const rule = buildIngressRule({
    groupId: source?.id ?? null,
    protocol: body.ip_protocol,
    fromPort: body.from_port,
    toPort: body.to_port,
    cidr: body.cidr,
  });
  if (rule.cidr !== null) checkCidrPrefix(rule.cidr);
  if (sameRuleExists(parent, rule)) throw new ApiError(400, `This rule already exists in group ${parent.id}`);
  const scope = groupScopeOf(ctx);
  try {
    const created = await deps.cloud.neutron.securityGroups.createRule(
      {
        securityGroupId: parent.id,
        direction: 'ingress',
        ethertype: rule.cidr?.includes(':') ? 'IPv6' : 'IPv4',
        protocol: rule.protocol,
        portRangeMin: rule.fromPort === -1 ? null : rule.fromPort,
        portRangeMax: rule.toPort === -1 ? null : rule.toPort,
        remoteIpPrefix: rule.cidr,
        remoteGroupId: rule.groupId,
      },
      scope,
    );
    const remote = source ? { name: source.name, tenant_id: source.projectId } : undefined;
    return { security_group_rule: ruleView(novaRule(created, parent.id), remote) };
  } catch (err) {
    // add_rules: Neutron's 404 SecurityGroupNotFound, 409 SecurityGroupLimitExceeded (403), 400 Invalid.
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
    if (isCloudError(err, 'Conflict')) throw new ApiError(403, err.message);
    if (isCloudError(err, 'BadRequest')) throw new ApiError(400, err.message);
    throw err;
  }
}

async function deleteRule(deps: ApiDeps, request: FastifyRequest) {
  proxyUntil(request);
  const { ctx } = authOf(request);
  allow(ctx, 'rule:delete');
  const { id } = request.params as { id: string };
  validateId(id);
  const changes = deps.cloud.neutron.securityGroups;
  try {
    await changes.ruleGroup(id, groupScopeOf(ctx));
    await changes.deleteRule(id, groupScopeOf(ctx));
  } catch (err) {
    if (isCloudError(err, 'NotFound')) throw new ApiError(404, err.message);
    throw err;
  }
}

export async function securityGroupRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  app.get('/os-security-groups', (request) => listGroups(deps, request));
  app.post('/os-security-groups', (request) => createGroup(deps, request));
  app.get('/os-security-groups/:id', (request) => showGroup(deps, request));
  app.put('/os-security-groups/:id', (request) => updateGroup(deps, request));
  app.delete('/os-security-groups/:id', async (request, reply) => {
    await deleteGroup(deps, request);
    return reply.code(202).send();
  });
  app.post('/os-security-group-rules', (request) => createRule(deps, request));
  app.delete('/os-security-group-rules/:id', async (request, reply) => {
    await deleteRule(deps, request);
    return reply.code(202).send();
  });
}
