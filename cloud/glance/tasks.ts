/**
 * Glance's tasks API (glance/api/v2/tasks.py, deprecated there in favour of image import): an admin asks
 * for a task (`tasks_api_access` is `role:admin` by default), it is recorded, and it ends. bootflow has no
 * task executor and fetches no image data from URLs (README "differ"), so a task that Glance would run ends
 * at once in `failure`, its message saying so, and expires 48 hours later (`task_time_to_live`). What Glance
 * refuses at create is refused the same way: the body's shape, and an `import`'s `import_from` as
 * validate_legacy_import_from_uri checks it (http or https, no file URIs, the default import filter: ports
 * 80 and 443, a host that is an IP address or resolves).
 */
import { randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import type { GlanceDb, TasksTable } from './schema';
import type { ImageRequestContext } from './types';

export const TASK_TYPES = ['import', 'api_image_import', 'location_import'] as const;
export const TASK_STATUSES = ['pending', 'processing', 'success', 'failure'] as const;
/** Glance's [task] task_time_to_live, in hours. */
const TASK_TIME_TO_LIVE_HOURS = 48;
/** import_filtering_opts defaults: allowed_schemes and allowed_ports. */
const ALLOWED_SCHEMES = ['http', 'https'];
const ALLOWED_PORTS = [80, 443];
/** The properties of Glance's task schema (additionalProperties: false). */
const SCHEMA_PROPERTIES = new Set([
  'id',
  'type',
  'status',
  'input',
  'result',
  'owner',
  'message',
  'image_id',
  'request_id',
  'user_id',
  'expires_at',
  'created_at',
  'updated_at',
  'self',
  'schema',
]);

export interface Task {
  id: string;
  type: string;
  status: (typeof TASK_STATUSES)[number];
  owner: string;
  input: Record<string, unknown> | null;
  result: Record<string, unknown> | null;
  message: string;
  imageId: string | null;
  requestId: string | null;
  userId: string | null;
  expiresAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface ListTasksOptions {
  status?: string;
  type?: string;
  sortKey?: string;
  sortDir?: 'asc' | 'desc';
  limit: number;
  marker?: string;
}

const SORT_KEYS = ['created_at', 'updated_at', 'id', 'status', 'type', 'owner', 'expires_at'] as const;

function bad(message: string): CloudError {
  return new CloudError('BadRequest', message);
}

function toTask(row: TasksTable): Task {
  const json = (t: string | null) => (t === null ? null : (JSON.parse(t) as Record<string, unknown>));
  return {
    id: row.id,
    type: row.type,
    status: row.status as Task['status'],
    owner: row.owner,
    input: json(row.input),
    result: json(row.result),
    message: row.message,
    imageId: row.image_id,
    requestId: row.request_id,
    userId: row.user_id,
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** normalize_hostname: an IP address as is, no numeric shorthand, else a name that resolves. */
async function hostPasses(host: string): Promise<boolean> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) return true;
  if (/^[\d.]+$/.test(bare) || /^0x/i.test(bare)) return false;
  try {
    await lookup(bare.endsWith('.') ? bare : `${bare}.`);
    return true;
  } catch {
    return false;
  }
}

/** glance/common/scripts/utils.py validate_legacy_import_from_uri with the default import filter. */
async function checkImportFrom(location: unknown): Promise<void> {
  if (typeof location !== 'string' || location === '')
    throw bad(`Invalid location: ${location === undefined || location === null ? 'None' : String(location)}`);
  if (location.startsWith('file:///') || location.startsWith('filesystem:///'))
    throw bad('File based imports are not allowed. Please use a non-local source of image data.');
  if (!location.startsWith('http://') && !location.startsWith('https://'))
    throw bad(
      "The given uri is not valid. Please specify a valid uri from the following list of supported uri ['http']",
    );
  // The host as written (WHATWG's URL would turn the shorthand 2130706433 into 127.0.0.1, which
  // normalize_hostname refuses).
  const parts = /^(https?):\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^:/?#]*)(?::(\d*))?(?:[/?#]|$)/.exec(location);
  const port = parts?.[3] ? Number(parts[3]) : undefined;
  const passes =
    parts !== null &&
    ALLOWED_SCHEMES.includes(parts[1]!) &&
    (port === undefined || ALLOWED_PORTS.includes(port)) &&
    parts[2] !== '' &&
    (await hostPasses(parts[2]!.toLowerCase()));
  if (!passes) throw bad(`URI for legacy import task does not pass filtering: ${location}`);
}

export class Tasks {
  constructor(
    private readonly store: ServiceDb<GlanceDb>,
    private readonly clock: Clock,
  ) {}

  /** POST /v2/tasks: the task, recorded and (nothing runs it here) failed at once. */
  async create(
    ctx: ImageRequestContext & { userId?: string },
    body: unknown,
    requestId?: string,
  ): Promise<Task> {
    requireAccess(ctx);
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw bad('Body expected in request.');
    const b = body as Record<string, unknown>;
    for (const key of ['type', 'input']) if (!(key in b)) throw bad(`Task '${key}' is required`);
    const extra = Object.keys(b).filter((k) => !SCHEMA_PROPERTIES.has(k));
    if (extra.length)
      throw bad(
        `Provided object does not match schema 'task': Additional properties are not allowed (${extra.map((k) => `'${k}'`).join(', ')} ${extra.length === 1 ? 'was' : 'were'} unexpected)`,
      );
    if (typeof b.type !== 'string' || !(TASK_TYPES as readonly string[]).includes(b.type))
      throw bad(
        `Provided object does not match schema 'task': '${String(b.type)}' is not one of ${JSON.stringify(TASK_TYPES)}`,
      );
    const input = b.input;
    if (input !== null && (typeof input !== 'object' || Array.isArray(input)))
      throw bad(
        `Provided object does not match schema 'task': ${JSON.stringify(input)} is not of type 'null', 'object'`,
      );
    const inputObject = (input ?? {}) as Record<string, unknown>;
    if (b.type === 'import') await checkImportFrom(inputObject.import_from);

    const now = this.clock.now();
    const imageId = typeof inputObject.image_id === 'string' ? inputObject.image_id : null;
    const row: TasksTable = {
      id: randomUUID(),
      type: b.type,
      status: 'failure',
      owner: ctx.projectId,
      input: input === null ? null : JSON.stringify(input),
      result: null,
      message:
        b.type === 'import'
          ? "bootflow's Glance does not import image data from a URL: no task executor runs import tasks"
          : `bootflow's Glance does not run ${b.type} tasks`,
      image_id: imageId,
      request_id: requestId ?? null,
      user_id: ctx.userId ?? null,
      expires_at: now + TASK_TIME_TO_LIVE_HOURS * 3600_000,
      created_at: now,
      updated_at: now,
    };
    await this.store.transaction(async (trx) => {
      await trx.insertInto('tasks').values(row).execute();
    });
    return toTask(row);
  }

  async get(ctx: ImageRequestContext, id: string): Promise<Task> {
    requireAccess(ctx);
    const row = await this.store.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || (!ctx.roles.includes('admin') && row.owner !== ctx.projectId))
      throw new CloudError('NotFound', `Task with the given id ${id} was not found`);
    return toTask(row);
  }

  /** Glance 2.12's GET /v2/images/{id}/tasks: the tasks that worked on the image, oldest first. */
  async listForImage(ctx: ImageRequestContext, imageId: string): Promise<Task[]> {
    // Glance checks get_image here (the caller sees the image), not tasks_api_access.
    let q = this.store.db.selectFrom('tasks').selectAll().where('image_id', '=', imageId);
    if (!ctx.roles.includes('admin')) q = q.where('owner', '=', ctx.projectId);
    return (await q.orderBy('created_at', 'asc').orderBy('id', 'asc').execute()).map(toTask);
  }

  async list(ctx: ImageRequestContext, options: ListTasksOptions): Promise<Task[]> {
    requireAccess(ctx);
    if (options.status && !(TASK_STATUSES as readonly string[]).includes(options.status))
      throw bad(`Invalid status value: ${options.status}`);
    if (options.type && options.type !== 'import') throw bad(`Invalid type value: ${options.type}`);
    const sortKey = options.sortKey ?? 'created_at';
    if (!(SORT_KEYS as readonly string[]).includes(sortKey))
      throw bad(`Unsupported sort_key. Acceptable values: ${SORT_KEYS.join(', ')}`);
    const dir = options.sortDir ?? 'desc';
    let q = this.store.db.selectFrom('tasks').selectAll();
    if (!ctx.roles.includes('admin')) q = q.where('owner', '=', ctx.projectId);
    if (options.status) q = q.where('status', '=', options.status);
    if (options.type) q = q.where('type', '=', options.type);
    let rows = await q
      .orderBy(sortKey as (typeof SORT_KEYS)[number], dir)
      .orderBy('id', dir)
      .execute();
    if (options.marker !== undefined) {
      const at = rows.findIndex((r) => r.id === options.marker);
      if (at < 0) throw bad(`Task with the given id ${options.marker} was not found`);
      rows = rows.slice(at + 1);
    }
    return rows.slice(0, options.limit).map(toTask);
  }
}

/** tasks_api_access: `role:admin` by default. */
function requireAccess(ctx: ImageRequestContext): void {
  if (!ctx.roles.includes('admin'))
    throw new CloudError('Forbidden', 'You are not authorized to complete tasks_api_access action.');
}
