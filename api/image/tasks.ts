/**
 * Glance's tasks API (glance/api/v2/tasks.py): `POST /v2/tasks` (201, Location), `GET /v2/tasks` (stubs:
 * no input, result or message; `status`, `type`, `sort_key`/`sort_dir`, `limit`/`marker`), `GET
 * /v2/tasks/{id}`, `DELETE` 405; `/v2/schemas/task` and `/tasks` (the minimal schemas Glance serves).
 * What a task does (nothing runs it here) is cloud/glance/tasks.ts's.
 */
import type { Glance } from '../../cloud/glance';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Task, Tasks } from '../../cloud/glance';
import { authOf } from '../auth';
import { ApiError } from '../errors';
import { glanceTime } from './views';

const LIMIT_DEFAULT = 25;
const LIMIT_MAX = 1000;
const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

const TASK_PROPERTIES = {
  id: {
    description: 'An identifier for the task',
    pattern: '^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$',
    type: 'string',
  },
  type: {
    description: 'The type of task represented by this content',
    enum: ['import', 'api_image_import', 'location_import'],
    type: 'string',
  },
  status: {
    description: 'The current status of this task',
    enum: ['pending', 'processing', 'success', 'failure'],
    type: 'string',
  },
  input: { description: 'The parameters required by task, JSON blob', type: ['null', 'object'] },
  result: { description: 'The result of current task, JSON blob', type: ['null', 'object'] },
  owner: { description: 'An identifier for the owner of this task', type: 'string' },
  message: {
    description: 'Human-readable informative message only included when appropriate (usually on failure)',
    type: 'string',
  },
  image_id: { description: 'Image associated with the task', type: 'string' },
  request_id: { description: 'Human-readable informative request-id', type: 'string' },
  user_id: { description: 'User associated with the task', type: 'string' },
  expires_at: {
    description: 'Datetime when this resource would be subject to removal',
    type: ['null', 'string'],
  },
  created_at: { description: 'Datetime when this resource was created', type: 'string' },
  updated_at: { description: 'Datetime when this resource was updated', type: 'string' },
  self: { readOnly: true, type: 'string' },
  schema: { readOnly: true, type: 'string' },
};

function partialProperties() {
  const { input: _input, result: _result, message: _message, ...rest } = TASK_PROPERTIES;
  return rest;
}

function stub(t: Task) {
  return {
    id: t.id,
    type: t.type,
    status: t.status,
    owner: t.owner,
    created_at: glanceTime(t.createdAt),
    updated_at: glanceTime(t.updatedAt),
    self: `/v2/tasks/${t.id}`,
    schema: '/v2/schemas/task',
    ...(t.expiresAt !== null ? { expires_at: glanceTime(t.expiresAt) } : {}),
  };
}

function taskView(t: Task) {
  return {
    ...stub(t),
    input: t.input,
    result: t.result,
    message: t.message,
    ...(t.imageId ? { image_id: t.imageId } : {}),
    ...(t.requestId ? { request_id: t.requestId } : {}),
    ...(t.userId ? { user_id: t.userId } : {}),
  };
}

export async function taskRoutes(app: FastifyInstance, tasks: Tasks, glance?: Glance): Promise<void> {
  const ctx = (request: FastifyRequest) => authOf(request).ctx;

  // Glance 2.12: the tasks of an image the caller may see (404 otherwise); none for an image no task made.
  if (glance) {
    app.get('/images/:imageId/tasks', async (request) => {
      const { imageId: id } = request.params as { imageId: string };
      const image = await glance.getImage(id, ctx(request));
      return { tasks: (await tasks.listForImage(ctx(request), image.id)).map(taskView) };
    });
  }

  app.get('/schemas/task', async () => ({ name: 'task', properties: TASK_PROPERTIES }));
  app.get('/schemas/tasks', async () => ({
    name: 'tasks',
    properties: {
      tasks: { type: 'array', items: { name: 'task', properties: partialProperties() } },
      schema: { type: 'string' },
    },
    links: [{ rel: 'describedby', href: '{schema}' }],
  }));

  app.post('/tasks', async (request, reply) => {
    const task = await tasks.create(ctx(request), request.body ?? null, request.id);
    return reply.code(201).header('location', `/v2/tasks/${task.id}`).send(taskView(task));
  });

  app.get('/tasks', async (request) => {
    const q: Record<string, string> = {};
    for (const [k, v] of Object.entries(request.query as Record<string, unknown>))
      q[k] = Array.isArray(v) ? String(v[v.length - 1]) : String(v);
    const sortDir = q.sort_dir ?? 'desc';
    if (sortDir !== 'asc' && sortDir !== 'desc')
      throw new ApiError(400, `Invalid sort direction: ${sortDir}`);
    if (q.marker !== undefined && !UUID.test(q.marker)) throw new ApiError(400, 'Invalid marker format');
    let limit = LIMIT_DEFAULT;
    if (q.limit !== undefined) {
      if (!/^-?\d+$/.test(q.limit)) throw new ApiError(400, 'limit param must be an integer');
      limit = Number(q.limit);
      if (limit < 0) throw new ApiError(400, 'limit param must be positive');
    }
    limit = Math.min(limit, LIMIT_MAX);
    const list = await tasks.list(ctx(request), {
      limit,
      sortDir,
      ...(q.sort_key !== undefined ? { sortKey: q.sort_key } : {}),
      ...(q.status !== undefined ? { status: q.status } : {}),
      ...(q.type !== undefined ? { type: q.type } : {}),
      ...(q.marker !== undefined ? { marker: q.marker } : {}),
    });
    const rest = new URLSearchParams(Object.entries(q).filter(([k]) => k !== 'marker'));
    const last = list[list.length - 1];
    return {
      tasks: list.map(stub),
      first: `/v2/tasks${rest.size ? `?${rest}` : ''}`,
      schema: '/v2/schemas/tasks',
      ...(last && list.length === limit
        ? { next: `/v2/tasks?${new URLSearchParams([...rest, ['marker', last.id]])}` }
        : {}),
    };
  });

  app.get('/tasks/:id', async (request) =>
    taskView(await tasks.get(ctx(request), (request.params as { id: string }).id)),
  );

  app.delete('/tasks/:id', async (request) => {
    await tasks.get(ctx(request), (request.params as { id: string }).id);
    throw new ApiError(
      405,
      'This operation is currently not permitted on Glance Tasks. They are auto deleted after reaching the time based on their expires_at property.',
      undefined,
      { allow: 'GET' },
    );
  });
}
