/**
 * The `rebuild` server action (nova/api/openstack/compute/servers.py _action_rebuild, schemas/servers.py
 * base_rebuild and its microversions): the body checked, then compute/api.py rebuild's checks in its order
 * (the lock, the state rules, the key pair of the caller (2.54), the image: found, active, not for a
 * volume-backed server, fitting the flavor; the metadata quota), then the rebuildInstance workflow through the common begin (task_state
 * rebuilding with the new image, name, metadata, key pair name (2.54) and user_data (2.57) saved, action
 * `rebuild`). 202 with the server (the narrower update view before 2.75, with key_name from 2.54) with
 * user_data from 2.57, and `adminPass`.
 */
import { z } from 'zod';
import { CloudError } from '../../cloud/errors';
import {
  checkImageFitsFlavor,
  checkOperationAllowed,
  MAX_METADATA_ITEMS,
  operationRule,
  type RebuildChanges,
} from '../../cloud/nova';
import { ApiError } from '../errors';
import { parseBody } from './common';
import { atLeast } from './microversion';
import { startOperation, type ActionAnswer, type ActionCall } from './server-actions';
import { userDataSchema } from '../../common/schemas';
import { metadataSchema, serverNameSchema } from './server-schema';
import { loadServerExtras, serverDetail } from './server-view';
import {
  compactIpv6,
  generatePassword,
  idFromHref,
  refuseIfLocked,
  resolveAutoDiskConfig,
  visibleInstance,
} from './servers';

const booleanLike = z.union([z.boolean(), z.enum(['True', 'true', 'False', 'false', '1', '0'])]);

function rebuildSchema(minor: number) {
  return z.strictObject({
    rebuild: z.strictObject({
      imageRef: z.string().min(1).max(255),
      name: serverNameSchema.optional(),
      adminPass: z.string().max(255).optional(),
      metadata: metadataSchema.optional(),
      preserve_ephemeral: booleanLike.optional(),
      'OS-DCF:diskConfig': z.enum(['AUTO', 'MANUAL']).optional(),
      accessIPv4: z.ipv4().optional(),
      accessIPv6: z.ipv6().optional(),
      ...(minor < 57 ? { personality: z.array(z.unknown()).optional() } : {}),
      ...(minor >= 19 ? { description: z.union([z.string().max(255), z.null()]).optional() } : {}),
      ...(minor >= 54 ? { key_name: z.union([z.string().min(1).max(255), z.null()]).optional() } : {}),
      ...(minor >= 57 ? { user_data: userDataSchema.nullable().optional() } : {}),
      ...(minor >= 63
        ? { trusted_image_certificates: z.union([z.array(z.string()).min(1).max(50), z.null()]).optional() }
        : {}),
    }),
  });
}

const unsupported = (what: string) =>
  new ApiError(400, `${what} on rebuild is not supported by bootflow's compute API.`);

export async function rebuildAction(call: ActionCall): Promise<ActionAnswer> {
  const { deps, request, ctx, id, body } = call;
  const minor = request.microversion.minor;
  const r = parseBody(rebuildSchema(minor), body).rebuild as z.infer<
    ReturnType<typeof rebuildSchema>
  >['rebuild'] &
    Record<string, unknown>;
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:servers:rebuild');
  if (Array.isArray(r.personality) && r.personality.length > 0) throw unsupported('Personality files');
  if (r.preserve_ephemeral === true || r.preserve_ephemeral === 'true' || r.preserve_ephemeral === 'True')
    throw unsupported('preserve_ephemeral');
  for (const field of ['description', 'trusted_image_certificates'])
    if (r[field] !== undefined) throw unsupported(`The field ${field}`);
  // compute/api.py rebuild: check_instance_lock, then check_instance_state, the key pair, then the image.
  refuseIfLocked(ctx, instance);
  checkOperationAllowed(operationRule('rebuild'), instance);
  const keyName = r.key_name as string | null | undefined;
  if (typeof keyName === 'string') {
    // The caller's key pair (users own keys, projects own servers), as Nova's rebuild looks it up.
    await deps.cloud.nova.getKeyPair(ctx.userId, keyName).catch((err: unknown) => {
      if (err instanceof CloudError && err.type === 'NotFound')
        throw new ApiError(400, 'Invalid key_name provided.');
      throw err;
    });
  }
  const userData = r.user_data as string | null | undefined;
  const imageId = idFromHref(r.imageRef);
  if (instance.bootFromVolume) {
    throw new ApiError(
      400,
      `Image ${imageId} is unacceptable: Unable to rebuild with a different image for a volume-backed server.`,
    );
  }
  const image = await deps.cloud.glance.getImage(imageId, ctx).catch((err: unknown) => {
    if (err instanceof CloudError && (err.type === 'NotFound' || err.type === 'BadRequest'))
      throw new ApiError(400, 'Cannot find image for rebuild');
    throw err;
  });
  if (image.status !== 'active') throw new ApiError(400, `Image ${image.id} is not active.`);
  checkImageFitsFlavor(image, instance.flavor, null);
  const diskConfig = r['OS-DCF:diskConfig'];
  // compute/api.py rebuild: AUTO on an image that disables it is 400, as on create.
  if (diskConfig !== undefined) resolveAutoDiskConfig(image, diskConfig);
  if (r.metadata && Object.keys(r.metadata).length > MAX_METADATA_ITEMS)
    throw new ApiError(403, `Maximum number of metadata items exceeds ${MAX_METADATA_ITEMS}`);

  const rebuild: RebuildChanges = {
    imageRef: image.id,
    ...(r.name !== undefined ? { name: r.name } : {}),
    ...(r.metadata !== undefined ? { metadata: r.metadata } : {}),
    ...(r.accessIPv4 !== undefined ? { accessIPv4: r.accessIPv4 } : {}),
    ...(r.accessIPv6 !== undefined ? { accessIPv6: compactIpv6(r.accessIPv6) } : {}),
    ...(keyName !== undefined ? { keyName } : {}),
    ...(userData !== undefined ? { userData } : {}),
    ...(diskConfig !== undefined ? { autoDiskConfig: diskConfig === 'AUTO' } : {}),
  };
  await startOperation(call, {
    operation: 'rebuild',
    policy: 'os_compute_api:servers:rebuild',
    workflowType: 'rebuildInstance',
    rebuild,
  });
  const after = await deps.cloud.nova.getInstance(instance.uuid);
  const extras = await loadServerExtras(deps, [after]);
  const narrow = !atLeast(request, 2, 75);
  const server = serverDetail(deps, request, ctx, after, extras, { show: true, update: narrow });
  if (narrow && atLeast(request, 2, 54)) server.key_name = after.keyName;
  // From 2.57 user_data is the answer's own field (Nova's show_user_data=False, then added at the end).
  if (atLeast(request, 2, 57)) {
    delete server['OS-EXT-SRV-ATTR:user_data'];
    server.user_data = after.userData;
  }
  // CONF.api.enable_instance_password (default True): the password is answered, not set in the guest.
  server.adminPass = r.adminPass ?? generatePassword();
  return { status: 202, body: { server } };
}
