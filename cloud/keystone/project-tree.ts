/**
 * Keystone's project hierarchy and project tags (keystone/resource/core.py, keystone/resource/schema.py):
 * a project's parent is another project of the same domain (none: the domain itself), at most
 * `max_project_tree_depth` (5) levels; a project with children is not deleted; tags are unique strings of
 * 1–255 characters without `,` or `/`, at most 80 per project.
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import type { ServiceDb } from '../db';
import type { DomainsTable, KeystoneDb, ProjectsTable } from './schema';

/** keystone.conf [DEFAULT] max_project_tree_depth. */
export const MAX_PROJECT_TREE_DEPTH = 5;
/** keystone/common/validation/parameter_types.py: tags maxItems. */
export const MAX_PROJECT_TAGS = 80;

/** Keystone's ValidationError wording for a bad tag list. */
export function checkTags(tags: readonly string[]): string[] {
  if (tags.length > MAX_PROJECT_TAGS)
    throw new CloudError(
      'BadRequest',
      `Invalid input for field 'tags': too many tags (at most ${MAX_PROJECT_TAGS}).`,
    );
  const seen = new Set<string>();
  for (const tag of tags) {
    if (tag.length < 1 || tag.length > 255)
      throw new CloudError(
        'BadRequest',
        `Invalid input for field 'tags': '${tag}' must be 1 to 255 characters.`,
      );
    if (/[,/]/.test(tag))
      throw new CloudError('BadRequest', `Invalid input for field 'tags': '${tag}' contains ',' or '/'.`);
    if (seen.has(tag))
      throw new CloudError(
        'BadRequest',
        `Invalid input for field 'tags': ${JSON.stringify(tags)} has non-unique elements.`,
      );
    seen.add(tag);
  }
  return [...seen];
}

export async function tagsOf(
  db: Kysely<KeystoneDb>,
  projectIds: readonly string[],
): Promise<Map<string, string[]>> {
  const byProject = new Map<string, string[]>();
  for (let i = 0; i < projectIds.length; i += 500) {
    const rows = await db
      .selectFrom('project_tag')
      .select(['project_id', 'name'])
      .where('project_id', 'in', projectIds.slice(i, i + 500))
      .orderBy('name')
      .execute();
    for (const r of rows) byProject.set(r.project_id, [...(byProject.get(r.project_id) ?? []), r.name]);
  }
  return byProject;
}

export async function writeTags(
  trx: Kysely<KeystoneDb>,
  projectId: string,
  tags: readonly string[],
): Promise<void> {
  await trx.deleteFrom('project_tag').where('project_id', '=', projectId).execute();
  if (tags.length)
    await trx
      .insertInto('project_tag')
      .values(tags.map((name) => ({ project_id: projectId, name })))
      .execute();
}

/**
 * Row locks for a read-check-write of the tree inside one transaction (ServiceDb.forUpdate: FOR UPDATE where
 * the database has row locks; SQLite's write transaction already excludes other writers). Each writer locks
 * the rows its check reads above it: a create its parent and that parent's ancestors, an enable its
 * ancestors, a disable or a delete the project itself, so a check never reads a row another writer is
 * about to change under it.
 */
export type TreeLock = Pick<ServiceDb<KeystoneDb>, 'forUpdate'>;

async function projectRow(
  db: Kysely<KeystoneDb>,
  id: string,
  lock: TreeLock | undefined,
): Promise<ProjectsTable | undefined> {
  const query = db.selectFrom('projects').selectAll().where('id', '=', id);
  return (lock ? lock.forUpdate(query) : query).executeTakeFirst();
}

/** A project row inside the caller's transaction, locked (NotFound if there is none). */
export async function lockedProject(
  trx: Kysely<KeystoneDb>,
  lock: TreeLock,
  id: string,
): Promise<ProjectsTable> {
  const row = await projectRow(trx, id, lock);
  if (!row) throw new CloudError('NotFound', `Could not find project: ${id}.`, { project: id });
  return row;
}

/** The domain row inside the caller's transaction, locked against a concurrent disable. */
export async function lockedDomain(
  trx: Kysely<KeystoneDb>,
  lock: TreeLock,
  id: string,
): Promise<DomainsTable> {
  const row = await lock
    .forUpdate(trx.selectFrom('domains').selectAll().where('id', '=', id))
    .executeTakeFirst();
  if (!row) throw new CloudError('NotFound', `Could not find domain: ${id}.`, { domain: id });
  return row;
}

/** The ancestors of a project, nearest first (the domain not included); locked when given a lock. */
export async function ancestorsOf(
  db: Kysely<KeystoneDb>,
  row: ProjectsTable,
  lock?: TreeLock,
): Promise<ProjectsTable[]> {
  const chain: ProjectsTable[] = [];
  let parentId = row.parent_id;
  while (parentId && chain.length <= MAX_PROJECT_TREE_DEPTH) {
    const parent = await projectRow(db, parentId, lock);
    if (!parent) break;
    chain.push(parent);
    parentId = parent.parent_id;
  }
  return chain;
}

/** Every descendant of a project, breadth first. */
export async function descendantsOf(db: Kysely<KeystoneDb>, id: string): Promise<ProjectsTable[]> {
  const found: ProjectsTable[] = [];
  let level = [id];
  while (level.length) {
    const children = await db.selectFrom('projects').selectAll().where('parent_id', 'in', level).execute();
    found.push(...children);
    level = children.map((c) => c.id);
  }
  return found;
}

/** A project or the domain, as the branch checks see it. */
interface BranchNode {
  id: string;
  enabled: number;
}

/**
 * Keystone's _enforce_project_constraints for a new project, inside the caller's transaction with the
 * branch locked: the parent (none: the domain itself) exists (400) in the same domain (400); the parent's
 * ancestors, the domain and the parent are all enabled, whatever the new project's own flag (400, naming
 * the first disabled one in Keystone's order); the tree stays within the maximum depth (403).
 */
export async function checkBranch(
  trx: Kysely<KeystoneDb>,
  lock: TreeLock,
  domain: DomainsTable,
  parentId: string | null,
): Promise<void> {
  const parent = parentId ? await projectRow(trx, parentId, lock) : undefined;
  // Keystone's POST /v3/projects turns a missing parent into a ValidationError (400).
  if (parentId && !parent)
    throw new CloudError('BadRequest', `Could not find project: ${parentId}.`, { project: parentId });
  if (parent && parent.domain_id !== domain.id)
    throw new CloudError(
      'BadRequest',
      `Cannot create project, since it specifies its domain_id ${domain.id}, but specifies a parent in a different domain (${parent.domain_id}).`,
    );
  const ancestors = parent ? await ancestorsOf(trx, parent, lock) : [];
  // list_project_parents(parent) (nearest first, up to the domain), then the parent itself.
  const branch: BranchNode[] = [...ancestors, domain, ...(parent ? [parent] : [])];
  const disabled = branch.find((node) => node.enabled !== 1);
  if (disabled)
    throw new CloudError(
      'BadRequest',
      `cannot create a project in a branch containing a disabled project: ${disabled.id}`,
    );
  // Keystone's _get_hierarchy_depth: the new project, its parent, the parent's ancestors and the domain
  // (a project acting as a domain), against max_project_tree_depth + 1.
  if (parent && ancestors.length + 3 > MAX_PROJECT_TREE_DEPTH + 1)
    throw new CloudError('Forbidden', `Max hierarchy depth reached for ${parent.id} branch.`);
}

/**
 * Keystone's _update_project for a change of `enabled`, inside the caller's transaction (`current` read
 * locked there): enabling needs every parent enabled, the domain included (_assert_all_parents_are_enabled);
 * disabling needs the whole subtree disabled (_check_whole_subtree_is_disabled). Both 403.
 */
export async function checkEnabledChange(
  trx: Kysely<KeystoneDb>,
  lock: TreeLock,
  current: ProjectsTable,
  enabled: boolean | undefined,
): Promise<void> {
  if (enabled === true && current.enabled === 0) {
    const parents: BranchNode[] = [
      ...(await ancestorsOf(trx, current, lock)),
      await lockedDomain(trx, lock, current.domain_id),
    ];
    if (parents.some((p) => p.enabled !== 1))
      throw new CloudError('Forbidden', `Cannot enable project ${current.id} since it has disabled parents`);
  }
  if (enabled === false && current.enabled === 1) {
    if ((await descendantsOf(trx, current.id)).some((p) => p.enabled === 1))
      throw new CloudError(
        'Forbidden',
        `Cannot disable project ${current.id} since its subtree contains enabled projects.`,
      );
  }
}
