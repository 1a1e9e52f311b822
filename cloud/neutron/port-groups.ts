/**
 * A port's security groups (securitygroupportbindings), set on create or replaced whole on update, as
 * Neutron's _get_security_groups_on_port checks them: each must be a group of the port's project
 * (SecurityGroupNotFound otherwise, naming the missing ones). Recorded only: nothing filters traffic (README).
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import type { NeutronDb } from './schema';

export async function setPortSecurityGroups(
  trx: Kysely<NeutronDb>,
  port: { id: string; projectId: string },
  groupIds: readonly string[],
): Promise<void> {
  const wanted = [...new Set(groupIds)];
  if (wanted.length) {
    const found = new Set(
      (
        await trx
          .selectFrom('security_groups')
          .select('id')
          .where('id', 'in', wanted)
          .where('project_id', '=', port.projectId)
          .execute()
      ).map((g) => g.id),
    );
    const missing = wanted.filter((id) => !found.has(id));
    if (missing.length)
      throw new CloudError('NotFound', `Security group ${missing.join(', ')} does not exist`, {
        neutronType: 'SecurityGroupNotFound',
      });
  }
  await trx.deleteFrom('securitygroupportbindings').where('port_id', '=', port.id).execute();
  if (wanted.length)
    await trx
      .insertInto('securitygroupportbindings')
      .values(wanted.map((security_group_id) => ({ port_id: port.id, security_group_id })))
      .execute();
}

/**
 * Adds one group to every port of a device (Nova's add_to_instance, one port update each there; here one
 * transaction with the ports locked, so two concurrent changes cannot lose one). The group must be of each
 * port's project (SecurityGroupNotFound, as Neutron's update_port answers). A port that has it keeps it.
 */
export async function addDeviceSecurityGroup(
  trx: Kysely<NeutronDb>,
  ports: ReadonlyArray<{ id: string; project_id: string }>,
  groupId: string,
): Promise<void> {
  for (const port of ports) {
    const group = await trx
      .selectFrom('security_groups')
      .select('id')
      .where('id', '=', groupId)
      .where('project_id', '=', port.project_id)
      .executeTakeFirst();
    if (!group)
      throw new CloudError('NotFound', `Security group ${groupId} does not exist`, {
        neutronType: 'SecurityGroupNotFound',
      });
    const bound = await trx
      .selectFrom('securitygroupportbindings')
      .select('port_id')
      .where('port_id', '=', port.id)
      .where('security_group_id', '=', groupId)
      .executeTakeFirst();
    if (!bound)
      await trx
        .insertInto('securitygroupportbindings')
        .values({ port_id: port.id, security_group_id: groupId })
        .execute();
  }
}

/** Removes one group from the ports that have it: how many had it (Nova's remove_from_instance). */
export async function removeDeviceSecurityGroup(
  trx: Kysely<NeutronDb>,
  portIds: readonly string[],
  groupId: string,
): Promise<number> {
  if (portIds.length === 0) return 0;
  const removed = await trx
    .deleteFrom('securitygroupportbindings')
    .where('port_id', 'in', portIds)
    .where('security_group_id', '=', groupId)
    .executeTakeFirst();
  return Number(removed.numDeletedRows);
}
