/**
 * Neutron's security groups and rules (neutron/extensions/securitygroup.py): list and show (the caller's
 * project's, every project's for an admin; the project's default group made on first look), create, update
 * and delete of groups, create and delete of rules. Policies are Neutron's defaults (policies/
 * security_group.py): a reader of the project reads, a member (or an admin) writes.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { RequestContext } from '../../cloud/keystone';
import type { GroupScope, Neutron } from '../../cloud/neutron';
import { authOf } from '../auth';
import { ApiError } from '../errors';
import { listResponse, showFields } from './collection';
import { isAdmin, ownerOf, parseBody, policyDenied, projectFields, readOnly } from './request';
import { withTags } from './tags';
import { ruleView, securityGroupView } from './views';

const GROUP_ATTRS = [
  'id',
  'name',
  'description',
  'tenant_id',
  'project_id',
  'security_group_rules',
  'stateful',
  'shared',
  'tags',
  'revision_number',
];
const RULE_ATTRS = [
  'id',
  'security_group_id',
  'tenant_id',
  'project_id',
  'direction',
  'ethertype',
  'protocol',
  'port_range_min',
  'port_range_max',
  'remote_ip_prefix',
  'remote_group_id',
  'remote_address_group_id',
  'normalized_cidr',
  'description',
  'revision_number',
];
const GROUP_UPDATABLE = ['name', 'description'];

const text = z.string().max(255);
/** Neutron's 'type:values' wording: `'x' is not in ['a', 'b']`. */
const oneOf = <T extends string>(values: readonly [T, ...T[]]) =>
  z.string().refine((v): v is T => (values as readonly string[]).includes(v), {
    error: (issue) => `'${String(issue.input)}' is not in [${values.map((v) => `'${v}'`).join(', ')}]`,
  });

const groupCreate = z.strictObject({
  name: text.optional(),
  description: text.optional(),
  // bootflow's groups are stateful only (README).
  stateful: z.literal(true).optional(),
  ...projectFields,
});
const groupUpdate = z.strictObject({ name: text.optional(), description: text.optional() });
const portValue = z
  .union([z.number().int(), z.string().max(16)])
  .nullable()
  .optional();
const ruleCreate = z.strictObject({
  security_group_id: z.string().min(1).max(255),
  direction: oneOf(['ingress', 'egress']),
  // convert_ethertype_to_case_insensitive: ipv4 / IPV6 are taken too.
  ethertype: z
    .string()
    .transform((v) => (['ipv4', 'ipv6'].includes(v.toLowerCase()) ? `IPv${v.slice(-1)}` : v))
    .pipe(oneOf(['IPv4', 'IPv6']))
    .optional(),
  protocol: z
    .union([z.number().int(), z.string().max(40)])
    .nullable()
    .optional(),
  port_range_min: portValue,
  port_range_max: portValue,
  remote_ip_prefix: z.string().max(64).nullable().optional(),
  remote_group_id: z.string().max(255).nullable().optional(),
  remote_address_group_id: z.null().optional(),
  description: text.optional(),
  ...projectFields,
});

/** Neutron's ADMIN_OR_PROJECT_MEMBER for the writes; a reader gets the policy's 403. */
function requireMember(ctx: RequestContext, rule: string): void {
  if (!isAdmin(ctx) && !ctx.roles.includes('member')) throw policyDenied(rule);
}

export async function securityGroupRoutes(
  app: FastifyInstance,
  neutron: Neutron,
  base: string,
): Promise<void> {
  const ctxOf = (request: FastifyRequest) => authOf(request).ctx;
  const idOf = (request: FastifyRequest) => (request.params as { id: string }).id;
  const scopeOf = (ctx: RequestContext): GroupScope => (isAdmin(ctx) ? 'all' : { projectId: ctx.projectId });
  const changes = neutron.securityGroups;

  async function visibleGroups(ctx: RequestContext) {
    await neutron.ensureDefaultSecurityGroup(ctx.projectId);
    return neutron.listSecurityGroups(isAdmin(ctx) ? undefined : ctx.projectId);
  }

  app.get('/security-groups', async (request) => {
    const groups = await withTags(
      neutron,
      'security_groups',
      (await visibleGroups(ctxOf(request))).map(securityGroupView),
    );
    return listResponse(request, 'security_groups', groups, GROUP_ATTRS, `${base}/security-groups`);
  });

  app.get('/security-groups/:id', async (request) => {
    const ctx = ctxOf(request);
    await neutron.ensureDefaultSecurityGroup(ctx.projectId);
    const group = await changes.visibleGroup(idOf(request), scopeOf(ctx));
    const [view] = await withTags(neutron, 'security_groups', [securityGroupView(group)]);
    return { security_group: showFields(request, view!) };
  });

  app.post('/security-groups', async (request, reply) => {
    const ctx = ctxOf(request);
    requireMember(ctx, 'create_security_group');
    const body = parseBody(groupCreate, request.body, 'security_group');
    const projectId = ownerOf(ctx, body, 'create_security_group');
    // Neutron makes the project's default group before its first other one.
    await neutron.ensureDefaultSecurityGroup(projectId);
    const group = await changes.createGroup({
      projectId,
      ...(body.name !== undefined ? { name: body.name } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
    });
    return reply.code(201).send({ security_group: securityGroupView(group) });
  });

  app.put('/security-groups/:id', async (request) => {
    const ctx = ctxOf(request);
    const group = await changes.visibleGroup(idOf(request), scopeOf(ctx));
    requireMember(ctx, 'update_security_group');
    readOnly(request.body, 'security_group', GROUP_UPDATABLE, GROUP_ATTRS);
    const body = parseBody(groupUpdate, request.body, 'security_group');
    const updated = await changes.updateGroup(group.id, body, scopeOf(ctx));
    const [view] = await withTags(neutron, 'security_groups', [securityGroupView(updated)]);
    return { security_group: view! };
  });

  app.delete('/security-groups/:id', async (request, reply) => {
    const ctx = ctxOf(request);
    const group = await changes.visibleGroup(idOf(request), scopeOf(ctx));
    requireMember(ctx, 'delete_security_group');
    await changes.deleteGroup(group.id, scopeOf(ctx));
    return reply.code(204).send();
  });

  app.get('/security-group-rules', async (request) => {
    const rules = (await visibleGroups(ctxOf(request))).flatMap((g) => g.rules.map((r) => ruleView(r, g)));
    return listResponse(request, 'security_group_rules', rules, RULE_ATTRS, `${base}/security-group-rules`);
  });

  app.get('/security-group-rules/:id', async (request) => {
    const id = idOf(request);
    const group = await changes.ruleGroup(id, scopeOf(ctxOf(request)));
    const rule = group.rules.find((r) => r.id === id);
    if (!rule)
      throw new ApiError(404, `Security group rule ${id} does not exist`, 'SecurityGroupRuleNotFound');
    return { security_group_rule: showFields(request, ruleView(rule, group)) };
  });

  app.post('/security-group-rules', async (request, reply) => {
    const ctx = ctxOf(request);
    requireMember(ctx, 'create_security_group_rule');
    const body = parseBody(ruleCreate, request.body, 'security_group_rule');
    const scope = scopeOf(ctx);
    ownerOf(ctx, body, 'create_security_group_rule');
    const group = await changes.visibleGroup(body.security_group_id, scope);
    const rule = await changes.createRule(
      {
        securityGroupId: group.id,
        direction: body.direction,
        ethertype: body.ethertype ?? 'IPv4',
        protocol: body.protocol ?? null,
        portRangeMin: body.port_range_min ?? null,
        portRangeMax: body.port_range_max ?? null,
        remoteIpPrefix: body.remote_ip_prefix ?? null,
        remoteGroupId: body.remote_group_id ?? null,
        ...(body.description !== undefined ? { description: body.description } : {}),
      },
      scope,
    );
    return reply.code(201).send({ security_group_rule: ruleView(rule, group) });
  });

  app.delete('/security-group-rules/:id', async (request, reply) => {
    const ctx = ctxOf(request);
    await changes.ruleGroup(idOf(request), scopeOf(ctx));
    requireMember(ctx, 'delete_security_group_rule');
    await changes.deleteRule(idOf(request), scopeOf(ctx));
    return reply.code(204).send();
  });
}
