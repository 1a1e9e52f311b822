/**
 * Keystone's revocation events. A token is revoked when it was issued at or before an event's
 * issued_before and each of the event's non-null selectors (user, project, audit id) matches it.
 */
import type { Kysely } from 'kysely';
import type { KeystoneDb } from './schema';

export interface RevocationSelector {
  userId?: string;
  projectId?: string;
  auditId?: string;
}

export interface RevocableToken {
  userId: string;
  /** Absent on a domain-scoped or unscoped token: only events without a project selector match it. */
  projectId?: string;
  auditId: string;
  issuedAt: number;
}

export async function isRevoked(db: Kysely<KeystoneDb>, token: RevocableToken): Promise<boolean> {
  const hit = await db
    .selectFrom('revocation_events')
    .select('id')
    .where('issued_before', '>=', token.issuedAt)
    .where((eb) =>
      eb.and([
        eb.or([eb('user_id', 'is', null), eb('user_id', '=', token.userId)]),
        token.projectId === undefined
          ? eb('project_id', 'is', null)
          : eb.or([eb('project_id', 'is', null), eb('project_id', '=', token.projectId)]),
        eb.or([eb('audit_id', 'is', null), eb('audit_id', '=', token.auditId)]),
      ]),
    )
    .limit(1)
    .executeTakeFirst();
  return hit !== undefined;
}

/**
 * Records an event (inside the caller's transaction) and prunes events revoked before `pruneBefore`: every
 * token they could match is past its allow_expired window by then.
 */
export async function addRevocationEvent(
  trx: Kysely<KeystoneDb>,
  event: { id: string; selector: RevocationSelector; issuedBefore: number; now: number; pruneBefore: number },
): Promise<void> {
  const { userId, projectId, auditId } = event.selector;
  if (!userId && !projectId && !auditId) throw new Error('A revocation event needs at least one selector');
  await trx
    .insertInto('revocation_events')
    .values({
      id: event.id,
      user_id: userId ?? null,
      project_id: projectId ?? null,
      audit_id: auditId ?? null,
      issued_before: event.issuedBefore,
      revoked_at: event.now,
    })
    .execute();
  await trx.deleteFrom('revocation_events').where('revoked_at', '<', event.pruneBefore).execute();
}
