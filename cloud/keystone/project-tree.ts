/**
 * Keystone's project hierarchy and project tags (keystone/resource/core.py, keystone/resource/schema.py):
 * a project's parent is another project of the same domain (none: the domain itself), at most
 * `max_project_tree_depth` (5) levels; a project with children is not deleted; tags are unique strings of
 * 1–255 characters without `,` or `/`, at most 80 per project.
 */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import type { KeystoneDb, ProjectsTable } from './schema';

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

/** The ancestors of a project, nearest first (the domain not included). */
export async function ancestorsOf(db: Kysely<KeystoneDb>, row: ProjectsTable): Promise<ProjectsTable[]> {
  const chain: ProjectsTable[] = [];
  let parentId = row.parent_id;
  while (parentId && chain.length <= MAX_PROJECT_TREE_DEPTH) {
    const parent = await db.selectFrom('projects').selectAll().where('id', '=', parentId).executeTakeFirst();
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

/**
 * The checks of Keystone's create_project for a parent: it exists (400), is in the same domain (400), is
 * enabled when the child is (403), and the tree stays within the maximum depth (403).
 */
export async function checkParent(
  db: Kysely<KeystoneDb>,
  parentId: string,
  domainId: string,
  childEnabled: boolean,
): Promise<ProjectsTable> {
  const parent = await db.selectFrom('projects').selectAll().where('id', '=', parentId).executeTakeFirst();
  // Keystone's POST /v3/projects turns a missing parent into a ValidationError (400).
  if (!parent)
    throw new CloudError('BadRequest', `Could not find project: ${parentId}.`, { project: parentId });
  if (parent.domain_id !== domainId)
    throw new CloudError(
      'BadRequest',
      `Cannot create project, since it specifies its domain_id ${domainId}, but specifies a parent in a different domain (${parent.domain_id}).`,
    );
  if (childEnabled && parent.enabled !== 1)
    throw new CloudError(
      'BadRequest',
      `cannot create a project in a branch containing a disabled project: ${parentId}`,
    );
  // Keystone's _get_hierarchy_depth: the new project, its parent, the parent's ancestors and the domain
  // (a project acting as a domain), against max_project_tree_depth + 1.
  const depth = (await ancestorsOf(db, parent)).length + 3;
  if (depth > MAX_PROJECT_TREE_DEPTH + 1)
    throw new CloudError('Forbidden', `Max hierarchy depth reached for ${parentId} branch.`);
  return parent;
}
