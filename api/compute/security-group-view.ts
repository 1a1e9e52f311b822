/**
 * Neutron's security groups as Nova's proxy shows them (nova/network/security_group_api.py's
 * _convert_to_nova_security_group_format, compute/security_groups.py's _format_security_group): ingress
 * rules only, a protocol without ports shown as 1-65535 (TCP, UDP) or -1 (anything else), the remote as
 * `group` (the remote group's name and project) or `ip_range` (its CIDR, 0.0.0.0/0 when none).
 */
import type { GroupScope, Neutron, SecurityGroup, SecurityGroupRule } from '../../cloud/neutron';
import { isCloudError } from '../../cloud/errors';
import type { RequestContext } from '../../cloud/keystone';
import { isAdmin } from './common';

/** A rule in Nova's terms (_convert_to_nova_security_group_rule_format). */
export interface NovaRule {
  id: string;
  parentGroupId: string;
  protocol: string | null;
  fromPort: number | null;
  toPort: number | null;
  groupId: string | null;
  cidr: string;
}

export interface RemoteGroup {
  name: string;
  tenant_id: string;
}

/** Which groups the caller's Neutron shows: every project's to an admin, else its own project's. */
export const groupScopeOf = (ctx: RequestContext): GroupScope =>
  isAdmin(ctx) ? 'all' : { projectId: ctx.projectId };

export function novaRule(rule: SecurityGroupRule, parentGroupId: string): NovaRule {
  const bare = rule.protocol !== null && rule.portRangeMin === null && rule.portRangeMax === null;
  const wide = bare && ['TCP', 'UDP'].includes(rule.protocol!.toUpperCase());
  return {
    id: rule.id,
    parentGroupId,
    protocol: rule.protocol,
    fromPort: bare ? (wide ? 1 : -1) : rule.portRangeMin,
    toPort: bare ? (wide ? 65535 : -1) : rule.portRangeMax,
    groupId: rule.remoteGroupId,
    cidr: rule.remoteIpPrefix || '0.0.0.0/0',
  };
}

export const ingressRules = (group: SecurityGroup): NovaRule[] =>
  group.rules.filter((r) => r.direction === 'ingress').map((r) => novaRule(r, group.id));

/** _format_security_group_rule: `group` when the rule names a remote group, else `ip_range`. */
export function ruleView(rule: NovaRule, remote?: RemoteGroup) {
  return {
    id: rule.id,
    parent_group_id: rule.parentGroupId,
    ip_protocol: rule.protocol,
    from_port: rule.fromPort,
    to_port: rule.toPort,
    group: rule.groupId && remote ? remote : {},
    ip_range: rule.groupId ? {} : { cidr: rule.cidr },
  };
}

/**
 * The remote groups the rules of these groups name, as the caller may see them; a remote group it cannot
 * see (or one just deleted) is missing, and Nova leaves that rule out.
 */
export async function remoteGroups(
  neutron: Neutron,
  scope: GroupScope,
  groups: SecurityGroup[],
): Promise<Map<string, RemoteGroup>> {
  const known = new Map(groups.map((g) => [g.id, { name: g.name, tenant_id: g.projectId }]));
  const remotes = new Map<string, RemoteGroup>();
  for (const id of new Set(groups.flatMap((g) => g.rules.map((r) => r.remoteGroupId)))) {
    if (id === null) continue;
    const seen = known.get(id);
    if (seen && (scope === 'all' || seen.tenant_id === scope.projectId)) {
      remotes.set(id, seen);
      continue;
    }
    try {
      const group = await neutron.securityGroups.visibleGroup(id, scope);
      remotes.set(id, { name: group.name, tenant_id: group.projectId });
    } catch (err) {
      if (!isCloudError(err, 'NotFound')) throw err;
    }
  }
  return remotes;
}

export function securityGroupView(group: SecurityGroup, remotes: Map<string, RemoteGroup>) {
  return {
    id: group.id,
    description: group.description,
    name: group.name,
    tenant_id: group.projectId,
    rules: ingressRules(group)
      .filter((r) => r.groupId === null || remotes.has(r.groupId))
      .map((r) => ruleView(r, r.groupId === null ? undefined : remotes.get(r.groupId))),
  };
}

/** The groups' views, sorted by project then name as Nova sorts its lists. */
export async function securityGroupViews(neutron: Neutron, scope: GroupScope, groups: SecurityGroup[]) {
  const remotes = await remoteGroups(neutron, scope, groups);
  return groups
    .map((g) => securityGroupView(g, remotes))
    .sort((a, b) =>
      a.tenant_id === b.tenant_id
        ? a.name < b.name
          ? -1
          : a.name > b.name
            ? 1
            : 0
        : a.tenant_id < b.tenant_id
          ? -1
          : 1,
    );
}
