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
