/**
 * Keystone's default roles and implied-role rules (keystone-manage bootstrap): admin implies manager,
 * manager implies member, member implies reader; `service` stands alone. A user's effective roles on a
 * project are the assigned ones plus everything they imply, transitively.
 */
export const DEFAULT_ROLES = ['admin', 'manager', 'member', 'reader', 'service'] as const;
export type DefaultRole = (typeof DEFAULT_ROLES)[number];

export const DEFAULT_IMPLIED_ROLES: ReadonlyArray<readonly [prior: string, implied: string]> = [
  ['admin', 'manager'],
  ['manager', 'member'],
  ['member', 'reader'],
];

/** Assigned role names expanded through the implication rules; sorted, no duplicates. */
export function expandImpliedRoles(
  assigned: Iterable<string>,
  rules: ReadonlyArray<readonly [prior: string, implied: string]>,
): string[] {
  const implies = new Map<string, string[]>();
  for (const [prior, implied] of rules) implies.set(prior, [...(implies.get(prior) ?? []), implied]);
  const effective = new Set<string>();
  const pending = [...assigned];
  for (let role = pending.pop(); role !== undefined; role = pending.pop()) {
    if (effective.has(role)) continue; // also stops implication cycles
    effective.add(role);
    pending.push(...(implies.get(role) ?? []));
  }
  return [...effective].sort();
}
