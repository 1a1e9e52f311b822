/**
 * The default security group every project gets on first use, with Neutron's default rules: all egress
 * (IPv4 and IPv6) and ingress only from members of the same group.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { NeutronDb, SecurityGroupRulesTable } from './schema';
import type { SecurityGroup, SecurityGroupRule } from './types';

export const DEFAULT_SECURITY_GROUP_NAME = 'default';

function defaultRules(groupId: string, projectId: string): SecurityGroupRulesTable[] {
  const rule = (direction: 'ingress' | 'egress', ethertype: 'IPv4' | 'IPv6'): SecurityGroupRulesTable => ({
    id: randomUUID(),
    security_group_id: groupId,
    project_id: projectId,
    direction,
    ethertype,
    protocol: null,
    port_range_min: null,
    port_range_max: null,
    remote_ip_prefix: null,
    remote_group_id: direction === 'ingress' ? groupId : null,
    description: '',
  });
  return [rule('egress', 'IPv4'), rule('egress', 'IPv6'), rule('ingress', 'IPv4'), rule('ingress', 'IPv6')];
}

export async function findDefaultSecurityGroupId(
  db: Kysely<NeutronDb>,
  projectId: string,
): Promise<string | undefined> {
  const row = await db
    .selectFrom('default_security_groups')
    .select('security_group_id')
    .where('project_id', '=', projectId)
    .executeTakeFirst();
  return row?.security_group_id;
}

/** Inserts the group, its rules and the default marker; the marker's primary key rejects a second one. */
export async function insertDefaultSecurityGroup(
  trx: Kysely<NeutronDb>,
  projectId: string,
  now: number,
): Promise<string> {
  const id = randomUUID();
  await trx
    .insertInto('security_groups')
    .values({
      id,
      name: DEFAULT_SECURITY_GROUP_NAME,
      project_id: projectId,
      description: 'Default security group',
      created_at: now,
    })
    .execute();
  await trx.insertInto('security_group_rules').values(defaultRules(id, projectId)).execute();
  await trx
    .insertInto('default_security_groups')
    .values({ project_id: projectId, security_group_id: id })
    .execute();
  return id;
}

export async function loadSecurityGroup(
  db: Kysely<NeutronDb>,
  id: string,
): Promise<SecurityGroup | undefined> {
  const group = await db.selectFrom('security_groups').selectAll().where('id', '=', id).executeTakeFirst();
  if (!group) return undefined;
  const rules = await db
    .selectFrom('security_group_rules')
    .selectAll()
    .where('security_group_id', '=', id)
    .orderBy('direction')
    .orderBy('ethertype')
    .execute();
  const isDefault = (await findDefaultSecurityGroupId(db, group.project_id)) === group.id;
  return {
    id: group.id,
    name: group.name,
    projectId: group.project_id,
    description: group.description,
    isDefault,
    rules: rules.map((r): SecurityGroupRule => ({
      id: r.id,
      direction: r.direction === 'ingress' ? 'ingress' : 'egress',
      ethertype: r.ethertype === 'IPv6' ? 'IPv6' : 'IPv4',
      protocol: r.protocol,
      portRangeMin: r.port_range_min,
      portRangeMax: r.port_range_max,
      remoteIpPrefix: r.remote_ip_prefix,
      remoteGroupId: r.remote_group_id,
      description: r.description,
    })),
  };
}
