/**
 * The shape of what a client hands the workflows, checked before anything happens (no token is asked for,
 * no quota reserved, no record written): wrong types, missing or unknown fields, out-of-range sizes and
 * names Nova would refuse end as one BadRequest naming the field. Whether the flavor, image, networks and
 * zone exist is nova-api's and neutron's question, asked by the activities.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { nameSchema, serverMetadataSchema, serverTagsSchema, userDataSchema } from '../common/schemas';
import type {
  RebuildRequest,
  SnapshotRequest,
  BootAuth,
  BootRequest,
  DeleteRequest,
  RebootRequest,
  ServerOperationRequest,
  VolumeActionRequest,
} from './types';

/** Request ids name workflows and idempotency keys: printable, no spaces, at most 255 characters. */
const requestIdSchema = z
  .string()
  .min(1)
  .max(255)
  .regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');
const refSchema = z.string().min(1).max(255);
const duration = (max: number) => z.number().int().min(1_000).max(max);

const credentialsSchema = z.strictObject({
  username: nameSchema,
  password: z.string().min(1).max(4096),
  userDomainName: nameSchema.optional(),
  projectName: nameSchema,
  projectDomainName: nameSchema.optional(),
});

// `token` and `credentials`: the shapes of stored histories, kept so they replay (see BootAuth).
const authSchema = z
  .strictObject({
    grant: z.string().min(1).max(16_384).optional(),
    token: z.string().min(1).max(16_384).optional(),
    credentials: credentialsSchema.optional(),
  })
  .refine(
    (a) => [a.grant, a.token, a.credentials].filter((v) => v !== undefined).length === 1,
    'give an operation grant',
  );

const bootRequestSchema = z.strictObject({
  requestId: requestIdSchema,
  instanceUuid: z.uuid().optional(),
  auth: authSchema,
  name: nameSchema,
  flavor: refSchema,
  image: refSchema,
  bootVolume: z
    .strictObject({
      sizeGb: z.number().int().min(1).max(10_000),
      deleteOnTermination: z.boolean().optional(),
      volumeId: z.uuid().optional(),
    })
    .optional(),
  // Empty: a server with no NIC (the compute API's networks 'none').
  networks: z.array(refSchema).max(32),
  availabilityZone: nameSchema.optional(),
  keyName: nameSchema.optional(),
  metadata: serverMetadataSchema.optional(),
  userData: userDataSchema.optional(),
  accessIPv4: z.ipv4().optional(),
  accessIPv6: z.ipv6().optional(),
  tags: serverTagsSchema.optional(),
  maxAttempts: z.number().int().min(1).max(10).optional(),
  timeouts: z
    .strictObject({
      hostPickupMs: duration(3_600_000).optional(),
      vifPluggedMs: duration(86_400_000).optional(),
      volumeAvailableMs: duration(7 * 86_400_000).optional(),
    })
    .optional(),
});

const deleteRequestSchema = z.strictObject({
  requestId: requestIdSchema,
  auth: authSchema,
  instanceUuid: z.uuid(),
  timeouts: z
    .strictObject({
      hostPickupMs: duration(3_600_000).optional(),
      createStopMs: duration(86_400_000).optional(),
    })
    .optional(),
});

const serverOperationShape = {
  requestId: requestIdSchema,
  auth: authSchema,
  instanceUuid: z.uuid(),
  timeouts: z.strictObject({ hostPickupMs: duration(3_600_000).optional() }).optional(),
};
const serverOperationSchema = z.strictObject(serverOperationShape);
const rebootRequestSchema = z.strictObject({ ...serverOperationShape, type: z.enum(['SOFT', 'HARD']) });
const rebuildRequestSchema = z.strictObject({
  ...serverOperationShape,
  rebuild: z.strictObject({
    imageRef: z.string().min(1).max(255),
    name: nameSchema.optional(),
    metadata: serverMetadataSchema.optional(),
    accessIPv4: z.ipv4().optional(),
    accessIPv6: z.ipv6().optional(),
  }),
});

const snapshotRequestSchema = z.strictObject({
  ...serverOperationShape,
  snapshot: z.strictObject({ imageId: z.uuid() }),
});

function badRequest(what: string, error: z.ZodError): ApplicationFailure {
  const problems = error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length ? issue.path.join('.') : what}: ${issue.message}`)
    .join('; ');
  return ApplicationFailure.create({
    type: 'BadRequest',
    message: `Invalid ${what}: ${problems}`,
    nonRetryable: true,
    details: [{ code: 400 }],
  });
}

function toAuth(auth: z.infer<typeof authSchema>): BootAuth {
  if (auth.grant !== undefined) return { grant: auth.grant };
  return auth.token !== undefined ? { token: auth.token } : { credentials: auth.credentials! };
}

/**
 * The same checks for a caller at the edge (client.ts) before it asks for a credential or stores anything in
 * Temporal: everything but `auth`, which the caller adds afterwards. Throws the same BadRequest failure.
 */
export function checkBootRequestFields(input: Omit<BootRequest, 'auth'>): void {
  const parsed = bootRequestSchema.omit({ auth: true }).safeParse(input);
  if (!parsed.success) throw badRequest('server create request', parsed.error);
}

export function parseBootRequest(input: unknown): BootRequest {
  const parsed = bootRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('server create request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as BootRequest;
}

export function parseDeleteRequest(input: unknown): DeleteRequest {
  const parsed = deleteRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('server delete request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as DeleteRequest;
}

const volumeActionRequestSchema = z.strictObject({
  requestId: requestIdSchema,
  auth: authSchema,
  instanceUuid: z.uuid(),
  volumeId: z.uuid(),
  timeouts: z.strictObject({ hostPickupMs: duration(3_600_000).optional() }).optional(),
});

/** `os-volume_attachments` create and delete (attachServerVolume, detachServerVolume). */
export function parseVolumeActionRequest(input: unknown): VolumeActionRequest {
  const parsed = volumeActionRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('volume attachment request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as VolumeActionRequest;
}

export function parseServerOperationRequest(input: unknown, what: string): ServerOperationRequest {
  const parsed = serverOperationSchema.safeParse(input);
  if (!parsed.success) throw badRequest(what, parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as ServerOperationRequest;
}

export function parseRebuildRequest(input: unknown): RebuildRequest {
  const parsed = rebuildRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('server rebuild request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as RebuildRequest;
}

export function parseSnapshotRequest(input: unknown): SnapshotRequest {
  const parsed = snapshotRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('server snapshot request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as SnapshotRequest;
}

export function parseRebootRequest(input: unknown): RebootRequest {
  const parsed = rebootRequestSchema.safeParse(input);
  if (!parsed.success) throw badRequest('server reboot request', parsed.error);
  return { ...parsed.data, auth: toAuth(parsed.data.auth) } as RebootRequest;
}
