/**
 * Neutron's security group writes (securitygroups_db.py): create (with the egress rules Neutron gives every
 * new group), update, delete (not while a port uses it; the default group only by an admin), and rules
 * (create after checkRule, refused as a duplicate of one the group has; delete). Groups and rules are
 * recorded only: no agent filters traffic with them (README).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import type { NeutronDb, SecurityGroupRulesTable } from './schema';
import { checkRule } from './security-group-rules';
import { DEFAULT_SECURITY_GROUP_NAME, loadSecurityGroup } from './security-groups';
import type { SecurityGroup, SecurityGroupRule } from './types';

const textSchema = z.string().max(255);

const createGroupSchema = z.strictObject({
  projectId: z.string().min(1).max(64),
  name: textSchema.default(''),
  description: textSchema.default(''),
});
const updateGroupSchema = z.strictObject({
  name: textSchema.optional(),
  description: textSchema.optional(),
});
const portValue = z
  .union([z.number(), z.string().max(16)])
  .nullable()
  .default(null);
const createRuleSchema = z.strictObject({
  securityGroupId: z.string().min(1).max(255),
  direction: z.enum(['ingress', 'egress']),
  ethertype: z.enum(['IPv4', 'IPv6']).default('IPv4'),
  protocol: z
    .union([z.number(), z.string().max(40)])
    .nullable()
    .default(null),
  portRangeMin: portValue,
  portRangeMax: portValue,
  remoteIpPrefix: z.string().max(64).nullable().default(null),
  remoteGroupId: z.string().max(255).nullable().default(null),
  description: textSchema.default(''),
});

export type CreateSecurityGroupRequest = z.input<typeof createGroupSchema>;
export type UpdateSecurityGroupRequest = z.input<typeof updateGroupSchema>;
export type CreateSecurityGroupRuleRequest = z.input<typeof createRuleSchema>;

/** Whose groups the caller may see: one project's, or every project's (an admin). */
export type GroupScope = { projectId: string } | 'all';

const groupNotFound = (id: string) =>
  new CloudError('NotFound', `Security group ${id} does not exist`, { neutronType: 'SecurityGroupNotFound' });
const inUse = (type: string, message: string) => new CloudError('Conflict', message, { neutronType: type });

function defaultNameRefused(): CloudError {
  return inUse('SecurityGroupDefaultAlreadyExists', 'Default security group already exists.');
}

export class SecurityGroupChanges {
  constructor(
    private readonly store: ServiceDb<NeutronDb>,
    private readonly now: () => number,
  ) {}

  /** A group the scope sees, else SecurityGroupNotFound (another project's group does not exist for it). */
  async visibleGroup(id: string, scope: GroupScope): Promise<SecurityGroup> {
    const group = await loadSecurityGroup(this.store.db, id);
    if (!group || (scope !== 'all' && group.projectId !== scope.projectId)) throw groupNotFound(id);
    return group;
  }

  async createGroup(input: CreateSecurityGroupRequest): Promise<SecurityGroup> {
    const request = parseRequest(createGroupSchema, input, 'security group');
    if (request.name === DEFAULT_SECURITY_GROUP_NAME) throw defaultNameRefused();
    const id = randomUUID();
    const now = this.now();
    await this.store.transaction(async (trx) => {
      await trx
        .insertInto('security_groups')
        .values({
          id,
          name: request.name,
          project_id: request.projectId,
          description: request.description,
          created_at: now,
        })
        .execute();
      // Neutron's create_security_group: a new group lets all egress out, IPv4 and IPv6.
      await trx
        .insertInto('security_group_rules')
        .values(
          (['IPv4', 'IPv6'] as const).map((ethertype): SecurityGroupRulesTable => ({
            id: randomUUID(),
            security_group_id: id,
            project_id: request.projectId,
            direction: 'egress',
            ethertype,
            protocol: null,
            port_range_min: null,
            port_range_max: null,
            remote_ip_prefix: null,
            remote_group_id: null,
            description: '',
          })),
        )
        .execute();
    });
    return this.visibleGroup(id, 'all');
  }

  async updateGroup(
    id: string,
    input: UpdateSecurityGroupRequest,
    scope: GroupScope,
  ): Promise<SecurityGroup> {
    const changes = parseRequest(updateGroupSchema, input, 'security group update');
    const group = await this.visibleGroup(id, scope);
    if (changes.name !== undefined && changes.name !== group.name) {
      if (changes.name === DEFAULT_SECURITY_GROUP_NAME) throw defaultNameRefused();
      if (group.isDefault)
        throw inUse('SecurityGroupCannotUpdateDefault', 'Updating default security group not allowed.');
    }
    await this.store.db
      .updateTable('security_groups')
      .set({
        ...(changes.name !== undefined ? { name: changes.name } : {}),
        ...(changes.description !== undefined ? { description: changes.description } : {}),
      })
      .where('id', '=', group.id)
      .execute();
    return this.visibleGroup(group.id, 'all');
  }

  /** Deletes a group with its rules and the rules of other groups naming it as their remote group. */
  async deleteGroup(id: string, scope: GroupScope): Promise<void> {
    const group = await this.visibleGroup(id, scope);
    if (group.isDefault && scope !== 'all')
      throw inUse(
        'SecurityGroupCannotRemoveDefault',
        'Insufficient rights for removing default security group.',
      );
    const refused = await this.store.transaction(async (trx) => {
      const bound = await trx
        .selectFrom('securitygroupportbindings')
        .select('port_id')
        .where('security_group_id', '=', group.id)
        .executeTakeFirst();
      if (bound) return inUse('SecurityGroupInUse', `Security Group ${group.id} in use.`);
      await trx.deleteFrom('security_group_rules').where('remote_group_id', '=', group.id).execute();
      await trx.deleteFrom('security_group_rules').where('security_group_id', '=', group.id).execute();
      await trx.deleteFrom('default_security_groups').where('security_group_id', '=', group.id).execute();
      await trx.deleteFrom('security_groups').where('id', '=', group.id).execute();
      return undefined;
    });
    if (refused) throw refused;
  }

  async createRule(input: CreateSecurityGroupRuleRequest, scope: GroupScope): Promise<SecurityGroupRule> {
    const request = parseRequest(createRuleSchema, input, 'security group rule');
    const rule = checkRule(request);
    const group = await this.visibleGroup(request.securityGroupId, scope);
    if (rule.remoteGroupId !== null) await this.visibleGroup(rule.remoteGroupId, scope);
    const same = group.rules.find(
      (r) =>
        r.direction === rule.direction &&
        r.ethertype === rule.ethertype &&
        r.protocol === rule.protocol &&
        r.portRangeMin === rule.portRangeMin &&
        r.portRangeMax === rule.portRangeMax &&
        r.remoteIpPrefix === rule.remoteIpPrefix &&
        r.remoteGroupId === rule.remoteGroupId,
    );
    if (same)
      throw inUse('SecurityGroupRuleExists', `Security group rule already exists. Rule id is ${same.id}.`);
    const id = randomUUID();
    await this.store.db
      .insertInto('security_group_rules')
      .values({
        id,
        security_group_id: group.id,
        project_id: group.projectId,
        direction: rule.direction,
        ethertype: rule.ethertype,
        protocol: rule.protocol,
        port_range_min: rule.portRangeMin,
        port_range_max: rule.portRangeMax,
        remote_ip_prefix: rule.remoteIpPrefix,
        remote_group_id: rule.remoteGroupId,
        description: request.description,
      })
      .execute();
    const created = (await this.visibleGroup(group.id, 'all')).rules.find((r) => r.id === id);
    if (!created) throw new CloudError('ServiceUnavailable', `Security group rule ${id} vanished; retry`);
    return created;
  }

  /** The group of a rule the scope sees, else SecurityGroupRuleNotFound. */
  async ruleGroup(ruleId: string, scope: GroupScope): Promise<SecurityGroup> {
    const row = await this.store.db
      .selectFrom('security_group_rules')
      .select(['security_group_id', 'project_id'])
      .where('id', '=', ruleId)
      .executeTakeFirst();
    if (!row || (scope !== 'all' && row.project_id !== scope.projectId))
      throw new CloudError('NotFound', `Security group rule ${ruleId} does not exist`, {
        neutronType: 'SecurityGroupRuleNotFound',
      });
    return this.visibleGroup(row.security_group_id, 'all');
  }

  async deleteRule(ruleId: string, scope: GroupScope): Promise<void> {
    await this.ruleGroup(ruleId, scope);
    await this.store.db.deleteFrom('security_group_rules').where('id', '=', ruleId).execute();
  }
}
