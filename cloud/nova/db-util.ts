/** Small helpers shared by the nova modules. */
import type { Kysely } from 'kysely';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import type { NovaDb } from './schema';

/** What every nova module works with: the nova database and the clock. */
export interface NovaContext {
  store: ServiceDb<NovaDb>;
  clock: Clock;
}

export { isUniqueViolation } from '../db';

/**
 * The next per-parent sequence number for faults, actions and events (timestamps can tie, so order needs a
 * number). Call inside a transaction that holds the parent row locked; a unique constraint backs it up.
 */
export async function nextSeq(
  trx: Kysely<NovaDb>,
  table: 'instance_faults' | 'instance_actions',
  instanceUuid: string,
): Promise<number> {
  const row = await trx
    .selectFrom(table)
    .select((eb) => eb.fn.max('seq').as('maxSeq'))
    .where('instance_uuid', '=', instanceUuid)
    .executeTakeFirst();
  return Number(row?.maxSeq ?? 0) + 1;
}

export function parseJsonArray(text: string): string[] {
  const value: unknown = JSON.parse(text);
  return Array.isArray(value) ? value.map(String) : [];
}

/** Cuts text to a column's size, as Nova truncates fault messages to 255 characters. */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : text.slice(0, max);
}

/** The same nova context, inside one transaction: the modules' own transactions join it. */
export function within(ctx: NovaContext, trx: Kysely<NovaDb>): NovaContext {
  return {
    clock: ctx.clock,
    store: { ...ctx.store, db: trx, transaction: (fn) => fn(trx) },
  };
}
