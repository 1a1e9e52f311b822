/**
 * Glance's image PATCH (glance/api/v2/images.py RequestDeserializer.update and ImagesController._do_*):
 * a JSON-patch document in `application/openstack-images-v2.1-json-patch` (draft 10: `{"op", "path",
 * "value"}`) or `application/openstack-images-v2.0-json-patch` (draft 4: `{"replace": "/name", "value"}`),
 * applied in order to the image as the caller sees it, then saved at once.
 */
import type { Image, UpdateImageInput } from '../../cloud/glance';
import { CONTAINER_FORMATS, DISK_FORMATS, IMAGE_VISIBILITIES } from '../../cloud/glance';
import { ApiError } from '../errors';

export const PATCH_MEDIA_TYPES: Record<string, 4 | 10> = {
  'application/openstack-images-v2.0-json-patch': 4,
  'application/openstack-images-v2.1-json-patch': 10,
};

const OPERATIONS = ['add', 'remove', 'replace'] as const;
type Operation = (typeof OPERATIONS)[number];

const READ_ONLY = new Set([
  'created_at',
  'updated_at',
  'status',
  'checksum',
  'size',
  'virtual_size',
  'direct_url',
  'self',
  'file',
  'schema',
  'id',
  'os_hash_algo',
  'os_hash_value',
]);
const RESERVED = new Set(['location', 'deleted', 'deleted_at']);
/** The image's own attributes (hasattr(image, ...)): they always exist and cannot be removed. */
const ATTRIBUTES = new Set([
  'name',
  'visibility',
  'protected',
  'os_hidden',
  'min_ram',
  'min_disk',
  'disk_format',
  'container_format',
  'owner',
  'tags',
  'locations',
]);

interface Change {
  op: Operation;
  root: string;
  value?: unknown;
}

const bad = (message: string) => new ApiError(400, message);
const forbidden = (message: string) => new ApiError(403, message);
const conflict = (message: string) => new ApiError(409, message);

/** 415 with Accept-Patch, as Glance answers a PATCH in another media type. */
export function unsupportedPatchType(): ApiError {
  const allowed = Object.keys(PATCH_MEDIA_TYPES).sort().join(', ');
  return new ApiError(415, `Image PATCH expects Content-Type one of: ${allowed}`, undefined, {
    'accept-patch': allowed,
  });
}

function decodePointer(pointer: string): string[] {
  if (!pointer.startsWith('/')) throw bad(`Pointer \`${pointer}\` does not start with "/".`);
  if (pointer.includes('//')) throw bad(`Pointer \`${pointer}\` contains adjacent "/".`);
  if (pointer.length > 1 && pointer.endsWith('/')) throw bad(`Pointer \`${pointer}\` end with "/".`);
  if (pointer === '/') throw bad(`Pointer \`${pointer}\` does not contains valid token.`);
  if (/~(?![01])/.test(pointer))
    throw bad(`Pointer \`${pointer}\` contains "~" not part of a recognized escape sequence.`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parseChange(raw: unknown, draft: 4 | 10): Change {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw bad('Operations must be JSON objects.');
  const r = raw as Record<string, unknown>;
  let op: Operation;
  let pointer: unknown;
  if (draft === 10) {
    if (!('op' in r))
      throw bad(
        `Unable to find \`op\` in JSON Schema change. It must be one of the following: ${OPERATIONS.join(', ')}.`,
      );
    if (!OPERATIONS.includes(r.op as Operation))
      throw bad(
        `Invalid operation: \`${String(r.op)}\`. It must be one of the following: ${OPERATIONS.join(', ')}.`,
      );
    op = r.op as Operation;
    if (!('path' in r)) throw bad("Unable to find 'path' in JSON Schema change");
    pointer = r.path;
  } else {
    const ops = OPERATIONS.filter((o) => o in r);
    if (ops.length > 1)
      throw bad('Operation objects must contain only one member named "add", "remove", or "replace".');
    if (ops.length === 0)
      throw bad('Operation objects must contain exactly one member named "add", "remove", or "replace".');
    op = ops[0] as Operation;
    pointer = r[op];
  }
  if (typeof pointer !== 'string') throw bad(`Pointer \`${String(pointer)}\` does not start with "/".`);
  const path = decodePointer(pointer);
  const root = path[0] ?? '';
  if (path.length !== 1) throw bad(`Invalid JSON pointer for this resource: '/${path.join('/')}'`);
  if (op !== 'remove' && !('value' in r)) throw bad(`Operation "${op}" requires a member named "value".`);
  if (READ_ONLY.has(root)) throw forbidden(`Attribute '${root}' is read-only.`);
  if (RESERVED.has(root) || root.startsWith('os_glance')) throw forbidden(`Attribute '${root}' is reserved.`);
  if (op !== 'remove') validateValue(root, r.value);
  return { op, root, ...(op !== 'remove' ? { value: r.value } : {}) };
}

/** The image schema's check of `{root: value}` (Glance validates each change as a partial image). */
function validateValue(root: string, value: unknown): void {
  const fail = (why: string) => bad(`Provided object does not match schema 'image': ${why}`);
  const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);
  switch (root) {
    case 'name':
    case 'owner':
      if (value !== null && typeof value !== 'string')
        throw fail(`${JSON.stringify(value)} is not of type 'null', 'string'`);
      if (typeof value === 'string' && value.length > 255) throw fail(`'${value}' is too long`);
      return;
    case 'visibility':
      if (!IMAGE_VISIBILITIES.includes(value as never))
        throw fail(`${JSON.stringify(value)} is not one of ['community', 'public', 'private', 'shared']`);
      return;
    case 'protected':
    case 'os_hidden':
      if (typeof value !== 'boolean') throw fail(`${JSON.stringify(value)} is not of type 'boolean'`);
      return;
    case 'min_ram':
    case 'min_disk':
      if (!isInt(value)) throw fail(`${JSON.stringify(value)} is not of type 'integer'`);
      if ((value as number) < 0)
        throw bad(`Invalid value '${String(value)}' for parameter '${root}': Cannot be a negative value`);
      if ((value as number) > 2 ** 31 - 1)
        throw fail(`${String(value)} is greater than the maximum of 2147483647`);
      return;
    case 'disk_format':
      if (!DISK_FORMATS.includes(value as never))
        throw fail(`${JSON.stringify(value)} is not one of ${JSON.stringify([null, ...DISK_FORMATS])}`);
      return;
    case 'container_format':
      if (!CONTAINER_FORMATS.includes(value as never))
        throw fail(`${JSON.stringify(value)} is not one of ${JSON.stringify([null, ...CONTAINER_FORMATS])}`);
      return;
    case 'tags':
      if (!Array.isArray(value) || value.some((t) => typeof t !== 'string' || t.length > 255))
        throw fail(
          `${JSON.stringify(value)} is not a valid list of tags (strings of at most 255 characters)`,
        );
      return;
    case 'locations':
      return;
    default:
      if (typeof value !== 'string') throw fail(`${JSON.stringify(value)} is not of type 'string'`);
      if (root.length > 255) throw bad('Custom property should not be greater than 255 characters.');
  }
}

/** The PATCH body as Glance's deserializer reads it: a JSON array of operation objects. */
export function parsePatch(body: unknown, draft: 4 | 10): Change[] {
  if (body === undefined || body === null) throw bad('Body expected in request.');
  if (!Array.isArray(body)) throw bad('Request body must be a JSON array of operation objects.');
  return body.map((raw) => parseChange(raw, draft));
}

/**
 * Applies the changes in order to the image's current values (Glance's _do_add/_do_replace/_do_remove) and
 * returns what differs, for one save.
 */
export function applyPatch(image: Image, changes: Change[], draft: 4 | 10, admin: boolean): UpdateImageInput {
  const core: Record<string, unknown> = {
    name: image.name,
    visibility: image.visibility,
    protected: image.protected,
    os_hidden: image.osHidden,
    min_ram: image.minRam,
    min_disk: image.minDisk,
    disk_format: image.diskFormat,
    container_format: image.containerFormat,
    owner: image.owner,
    tags: image.tags,
  };
  const touched = new Set<string>();
  const props: Record<string, string> = { ...image.properties };
  const propsTouched = new Set<string>();
  for (const { op, root, value } of changes) {
    if (root === 'locations') {
      // show_multiple_locations is off by default: the locations are invisible.
      throw forbidden(
        op === 'remove'
          ? "It's not allowed to remove locations if locations are invisible."
          : op === 'add'
            ? "It's not allowed to add locations if locations are invisible."
            : "It's not allowed to update locations if locations are invisible.",
      );
    }
    const isAttribute = ATTRIBUTES.has(root);
    if (op === 'remove') {
      if (isAttribute) throw forbidden(`Property ${root} may not be removed.`);
      if (!(root in props)) throw conflict(`Property ${root} does not exist.`);
      delete props[root];
      propsTouched.add(root);
      continue;
    }
    if (root === 'owner' && !admin && op === 'replace')
      throw forbidden("Owner can't be updated by non admin.");
    if (op === 'add' && draft === 4 && (isAttribute || root in props))
      throw conflict(`Property ${root} already present.`);
    if (isAttribute) {
      core[root] = value;
      touched.add(root);
    } else {
      if (op === 'replace' && !(root in props)) throw conflict(`Property ${root} does not exist.`);
      props[root] = value as string;
      propsTouched.add(root);
    }
  }
  const out: UpdateImageInput = {};
  const set = <K extends keyof UpdateImageInput>(key: K, attr: string, value: UpdateImageInput[K]) => {
    if (touched.has(attr)) out[key] = value;
  };
  set('name', 'name', (core.name as string | null) ?? '');
  set('visibility', 'visibility', core.visibility as UpdateImageInput['visibility']);
  set('protected', 'protected', core.protected as boolean);
  set('osHidden', 'os_hidden', core.os_hidden as boolean);
  set('minRam', 'min_ram', core.min_ram as number);
  set('minDisk', 'min_disk', core.min_disk as number);
  set('diskFormat', 'disk_format', core.disk_format as UpdateImageInput['diskFormat']);
  set('containerFormat', 'container_format', core.container_format as UpdateImageInput['containerFormat']);
  if (touched.has('owner') && core.owner !== image.owner) out.owner = (core.owner as string | null) ?? '';
  set('tags', 'tags', core.tags as string[]);
  if (propsTouched.size) {
    out.properties = {};
    for (const name of propsTouched) out.properties[name] = props[name] ?? null;
  }
  return out;
}
