/**
 * POST /servers and PUT /servers/{id} bodies as nova/api/openstack/compute/schemas/servers.py defines them
 * for 2.1 to 2.79: strict objects (additionalProperties false) where Nova's are, Nova's name rules, fields
 * that appear with a microversion refused before it. What bootflow does not implement (several servers per
 * request, ports, fixed IPs, a config drive, ...) passes the schema and is refused afterwards with a clear 400.
 */
import { z } from 'zod';
import { serverTagsSchema, userDataSchema } from '../../common/schemas';
import { parameterBoolean } from '../parameter-types';

/** parameter_types.name: 1..255 printable characters, no leading or trailing whitespace. */
export const serverNameSchema = z
  .string()
  .min(1)
  .max(255)
  .refine((s) => !/[\p{Cc}]/u.test(s), 'must not contain control characters')
  .refine((s) => s.trim() === s, 'Invalid input: the name must not start or end with whitespace');

const UUID_RE = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const uuidString = z.string().refine((s) => UUID_RE.test(s), "is not a 'uuid'");

/**
 * servers.py's _hints: `group` is a server group's uuid, `same_host` / `different_host` servers' uuids;
 * the other hints are open (additionalProperties).
 */
const schedulerHintsSchema = z.looseObject({
  group: uuidString.optional(),
  // One server's uuid, or a list of them (parameter_types.server_id).
  different_host: z.union([uuidString, z.array(uuidString)]).optional(),
  // type ['string', 'array'] with uuid items: a plain string is not checked to be a uuid.
  same_host: z.union([z.string(), z.array(uuidString)]).optional(),
});

/** Integers that Nova also takes as digit strings (parameter_types.positive_integer and friends). */
const intLike = (min: number) =>
  z
    .union([z.number().int().min(min), z.string().regex(/^[0-9]+$/)])
    .transform(Number)
    .pipe(z.number().min(min));

/** parameter_types.metadata: keys of [a-zA-Z0-9-_:. ], 1..255; string values up to 255. */
export const metadataSchema = z.record(
  z.string().regex(/^[a-zA-Z0-9\-_:. ]{1,255}$/, 'does not match any allowed key pattern'),
  z.string().max(255),
);
// No item limit in the schema: Nova counts items against the metadata_items quota afterwards (403).

const networkEntry = (version: number) =>
  z.strictObject({
    fixed_ip: z.string().optional(),
    port: z.union([uuidString, z.null()]).optional(),
    uuid: uuidString.optional(),
    ...(version >= 32 ? { tag: z.string().min(1).max(60).optional() } : {}),
  });

const bdmV2 = (version: number) =>
  z.strictObject({
    source_type: z.enum(['volume', 'image', 'snapshot', 'blank']).optional(),
    destination_type: z.enum(['local', 'volume']).optional(),
    guest_format: z.string().max(255).optional(),
    device_type: z.string().max(255).optional(),
    disk_bus: z.string().max(255).optional(),
    boot_index: z.union([intLike(-1).pipe(z.number()), z.null()]).optional(),
    device_name: z.string().max(255).optional(),
    uuid: z
      .string()
      .min(1)
      .max(255)
      .regex(/^[a-zA-Z0-9._-]*$/)
      .optional(),
    volume_size: z.union([intLike(1), z.null()]).optional(),
    delete_on_termination: parameterBoolean.optional(),
    no_device: z.unknown().optional(),
    connection_info: z.string().max(16_777_215).optional(),
    snapshot_id: uuidString.optional(),
    volume_id: uuidString.optional(),
    ...(version >= 32 ? { tag: z.string().min(1).max(60).optional() } : {}),
    ...(version >= 67 ? { volume_type: z.union([z.string().min(1).max(255), z.null()]).optional() } : {}),
  });

/** The create body for microversion 2.<minor>, built once per microversion (zod compiles each on first use). */
export function serverCreateSchema(minor: number) {
  let schema = createSchemas.get(minor);
  if (!schema) {
    schema = buildServerCreateSchema(minor);
    createSchemas.set(minor, schema);
  }
  return schema;
}

const createSchemas = new Map<number, ReturnType<typeof buildServerCreateSchema>>();

function buildServerCreateSchema(minor: number) {
  const networks =
    minor >= 37
      ? z.union([z.array(networkEntry(minor)), z.enum(['auto', 'none'])])
      : z.array(networkEntry(minor)).optional();
  const server = z.strictObject({
    name: serverNameSchema,
    imageRef: z.union([uuidString, z.literal('')]).optional(),
    flavorRef: z.union([z.string().min(1).max(255), z.number().int().min(0)]),
    adminPass: z.string().max(255).optional(),
    metadata: metadataSchema.optional(),
    networks,
    'OS-DCF:diskConfig': z.enum(['AUTO', 'MANUAL']).optional(),
    accessIPv4: z.ipv4().optional(),
    accessIPv6: z.ipv6().optional(),
    availability_zone: z.string().min(1).max(255).optional(),
    block_device_mapping: z.array(z.record(z.string(), z.unknown())).optional(),
    block_device_mapping_v2: z.array(bdmV2(minor)).optional(),
    config_drive: parameterBoolean.optional(),
    key_name: z.string().min(1).max(255).optional(),
    min_count: intLike(1).optional(),
    max_count: intLike(1).optional(),
    return_reservation_id: parameterBoolean.optional(),
    security_groups: z.array(z.strictObject({ name: z.string().min(1).max(255) })).optional(),
    user_data: userDataSchema.optional(),
    ...(minor >= 19 ? { description: z.union([z.string().max(255), z.null()]).optional() } : {}),
    ...(minor >= 52 ? { tags: serverTagsSchema.optional() } : {}),
    ...(minor >= 63
      ? { trusted_image_certificates: z.union([z.array(z.string()).min(1).max(50), z.null()]).optional() }
      : {}),
    ...(minor >= 74
      ? {
          host: z.string().min(1).max(255).optional(),
          hypervisor_hostname: z.string().min(1).max(255).optional(),
        }
      : {}),
  });
  return z.strictObject({
    server,
    'os:scheduler_hints': schedulerHintsSchema.optional(),
    'OS-SCH-HNT:scheduler_hints': schedulerHintsSchema.optional(),
  });
}

export type ServerCreateBody = z.infer<ReturnType<typeof serverCreateSchema>>;

/** PUT /servers/{id}: the name (and from 2.19 the description, which bootflow does not keep). */
export function serverUpdateSchema(minor: number) {
  return z.strictObject({
    server: z.strictObject({
      name: serverNameSchema.optional(),
      'OS-DCF:diskConfig': z.enum(['AUTO', 'MANUAL']).optional(),
      accessIPv4: z.ipv4().optional(),
      accessIPv6: z.ipv6().optional(),
      ...(minor >= 19 ? { description: z.union([z.string().max(255), z.null()]).optional() } : {}),
    }),
  });
}
