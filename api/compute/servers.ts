/**
 * /servers: create (writes the quota claim and the instance row as nova-api does, starts createInstance
 * and answers 202 after the start RPC), list and detail with Nova's filters, show, rename,
 * delete (starts deleteInstance, 204) and ips; POST /servers/{id}/action is server-actions.ts's.
 * Reads go to the Nova, Neutron and Cinder databases directly, as nova-api reads its own.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CloudError } from '../../cloud/errors';
import type { RequestContext, ValidatedToken } from '../../cloud/keystone';
import {
  bootQuota,
  checkExistingBootVolume,
  checkInstanceLock,
  instancesAllowed,
  checkImageFitsFlavor,
  type Instance,
  type InstanceSchedulerHints,
  MAX_METADATA_ITEMS,
  type QuotaAmounts,
} from '../../cloud/nova';
import { bootWorkflowId, CONTROLLER_QUEUE, deleteWorkflowId } from '../../workflows/names';
import type { BootRequest, DeleteRequest } from '../../workflows/types';
import { checkOwnership, deleteOwnership, ForeignWorkflowError } from '../../lib/workflow-ownership';
import { authOf } from '../auth';
import type { ApiDeps } from '../deps';
import { ApiError } from '../errors';
import { FALSE_STRINGS, isTrue, TRUE_STRINGS } from '../parameter-types';
import {
  can,
  enforcePolicy,
  isAdmin,
  nextLink,
  paginate,
  parseBody,
  parseLimit,
  queryOf,
  resourceLinks,
} from './common';
import { AdmissionGate, DEFAULT_CONCURRENT_CREATES } from './create-admission';
import { CreateLookups } from './create-lookups';
import { atLeast } from './microversion';
import { serverCreateSchema, serverUpdateSchema, type ServerCreateBody } from './server-schema';
import { loadServerExtras, serverBasic, serverDetail } from './server-view';

export type PolicyName =
  | 'os_compute_api:servers:show'
  | 'os_compute_api:servers:stop'
  | 'os_compute_api:servers:start'
  | 'os_compute_api:servers:reboot'
  | `os_compute_api:os-pause-server:${'pause' | 'unpause'}`
  | `os_compute_api:os-suspend-server:${'suspend' | 'resume'}`
  | 'os_compute_api:servers:delete'
  | 'os_compute_api:servers:update'
  | 'os_compute_api:servers:rebuild'
  | 'os_compute_api:servers:create_image'
  | 'os_compute_api:servers:create_image:allow_volume_backed'
  | `os_compute_api:os-lock-server:${'lock' | 'unlock' | 'unlock:unlock_override'}`
  | `os_compute_api:os-volumes-attachments:${'index' | 'show' | 'create' | 'delete'}`
  | `os_compute_api:os-security-groups:${'list' | 'add' | 'remove'}`
  | 'os_compute_api:ips:index'
  | 'os_compute_api:ips:show'
  | 'os_compute_api:os-instance-actions:list'
  | 'os_compute_api:os-instance-actions:show'
  | 'os_compute_api:os-console-output'
  | `os_compute_api:os-admin-actions:${'reset_state' | 'inject_network_info'}`
  | 'os_compute_api:os-deferred-delete:restore'
  | `os_compute_api:os-server-tags:${'index' | 'show' | 'update' | 'update_all' | 'delete' | 'delete_all'}`
  | `os_compute_api:os-server-password:${'show' | 'clear'}`
  | `os_compute_api:server-metadata:${'index' | 'show' | 'create' | 'update' | 'update_all' | 'delete'}`;

export const instanceNotFound = (id: string) => new ApiError(404, `Instance ${id} could not be found.`);

/**
 * The instance as the caller may see it: another project's (or a missing, or a deleted) one is 404 with
 * Nova's message; a policy denial inside the caller's own project is 403.
 */
export async function visibleInstance(
  deps: ApiDeps,
  ctx: RequestContext,
  id: string,
  rule: PolicyName,
): Promise<Instance> {
  let instance: Instance;
  try {
    instance = await deps.cloud.nova.getInstance(id);
  } catch (err) {
    if (err instanceof CloudError && (err.type === 'NotFound' || err.type === 'BadRequest'))
      throw instanceNotFound(id);
    throw err;
  }
  if (!can(ctx, rule, instance.projectId)) {
    if (instance.projectId !== ctx.projectId) throw instanceNotFound(id);
    enforcePolicy(ctx, rule, instance.projectId);
  }
  return instance;
}

/**
 * compute/api.py check_instance_lock: a locked server refuses the action (409 "Instance <uuid> is
 * locked") unless the caller is an admin.
 */
export function refuseIfLocked(ctx: RequestContext, instance: Instance): void {
  try {
    checkInstanceLock(instance, isAdmin(ctx));
  } catch (err) {
    if (err instanceof CloudError) throw new ApiError(err.code, err.message);
    throw err;
  }
}

/** nova.utils.generate_password's alphabet (no look-alike characters), length 12. */
const PASSWORD_SYMBOLS = '23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
export function generatePassword(length = 12): string {
  return Array.from({ length }, () => PASSWORD_SYMBOLS[randomInt(PASSWORD_SYMBOLS.length)]).join('');
}

/** common.get_id_from_href: the last path segment of a link, or the value itself. */
export function idFromHref(ref: string | number): string {
  const text = String(ref);
  // Only an absolute URL parses, and it has a scheme: a bare id skips the parser's throw.
  if (!text.includes(':')) return text;
  try {
    const url = new URL(text);
    return url.pathname.split('/').filter(Boolean).at(-1) ?? text;
  } catch {
    return text;
  }
}

/** An IPv6 address in its canonical compressed form, as Nova's IPAddress column stores it. */
export const compactIpv6 = (ip: string): string => new URL(`http://[${ip}]/`).hostname.slice(1, -1);

const unsupported = (what: string) =>
  new ApiError(400, `${what} is not supported by bootflow's compute API.`);

/** Refuses what the schema allows but bootflow does not do, before anything happens. */
function refuseUnsupported(body: ServerCreateBody): void {
  const s = body.server as ServerCreateBody['server'] & Record<string, unknown>;
  if (s.block_device_mapping !== undefined) throw unsupported('The legacy block_device_mapping');
  if (isTrue(s.config_drive)) throw unsupported('A config drive');
  if (s.description !== undefined && s.description !== null) throw unsupported('A server description');
  if (Array.isArray(s.trusted_image_certificates)) throw unsupported('trusted_image_certificates');
  if (s.host !== undefined || s.hypervisor_hostname !== undefined) throw unsupported('Requesting a host');
  if (s.security_groups?.some((g) => g.name !== 'default'))
    throw unsupported('A security group other than default');
  const hints = body['os:scheduler_hints'] ?? body['OS-SCH-HNT:scheduler_hints'];
  if (hints && Object.keys(hints).some((k) => !SCHEDULER_HINTS.has(k)))
    throw unsupported('A scheduler hint other than group, same_host and different_host');
}

const SCHEDULER_HINTS = new Set(['group', 'same_host', 'different_host']);

/** What the instance row keeps for the scheduler and the server view, besides the boot request. */
interface PlacementFields {
  serverGroup?: string;
  schedulerHints?: InstanceSchedulerHints;
  autoDiskConfig: boolean;
}

/**
 * The same_host / different_host hints as lists (a single uuid is a list of one, as Nova's
 * get_scheduler_hint and instance_uuids_overlap read them); an empty list is no hint.
 */
function affinityHints(body: ServerCreateBody): InstanceSchedulerHints | undefined {
  const hints = body['os:scheduler_hints'] ?? body['OS-SCH-HNT:scheduler_hints'];
  const list = (v: string | string[] | undefined) =>
    v === undefined ? [] : Array.isArray(v) ? [...new Set(v)] : [v];
  const sameHost = list(hints?.same_host);
  const differentHost = list(hints?.different_host);
  if (sameHost.length === 0 && differentHost.length === 0) return undefined;
  return {
    ...(sameHost.length > 0 ? { sameHost } : {}),
    ...(differentHost.length > 0 ? { differentHost } : {}),
  };
}

/**
 * compute/api.py _inherit_properties_from_image: OS-DCF:diskConfig as asked, else the image's
 * auto_disk_config property (bool_from_string: MANUAL without it); AUTO on an image whose property is
 * 'disabled' is 400 AutoDiskConfigDisabledByImage.
 */
export function resolveAutoDiskConfig(
  image: { id: string; properties: Record<string, unknown> },
  asked: 'AUTO' | 'MANUAL' | undefined,
): boolean {
  const prop = image.properties.auto_disk_config;
  const fromImage = typeof prop === 'string' ? prop.trim().toLowerCase() : undefined;
  if (asked === 'AUTO' && fromImage === 'disabled')
    throw new ApiError(400, `Requested image ${image.id} has automatic disk resize disabled.`);
  if (asked !== undefined) return asked === 'AUTO';
  return fromImage !== undefined && ['1', 't', 'true', 'on', 'y', 'yes'].includes(fromImage);
}

/**
 * compute/api.py _get_requested_instance_group: the `group` hint's server group, which must exist (400
 * "Instance group <id> could not be found.") and, in bootflow, be the caller's project's (an admin's any).
 */
async function requestedGroup(
  deps: ApiDeps,
  ctx: RequestContext,
  body: ServerCreateBody,
): Promise<string | undefined> {
  const hint = (body['os:scheduler_hints'] ?? body['OS-SCH-HNT:scheduler_hints'])?.group;
  if (hint === undefined) return undefined;
  const notFound = () => new ApiError(400, `Instance group ${hint} could not be found.`);
  const group = await deps.cloud.nova.getServerGroup(hint).catch((err: unknown) => {
    if (err instanceof CloudError && err.type === 'NotFound') throw notFound();
    throw err;
  });
  if (group.projectId !== ctx.projectId && !isAdmin(ctx)) throw notFound();
  return group.uuid;
}

/**
 * The boot source: an image, a new volume made from one, or an existing volume (block_device_mapping_v2);
 * the existing volume is looked up and checked by the caller (its image is the volume's).
 */
type BootSource =
  | { imageId: string; bootVolume?: { sizeGb: number; deleteOnTermination: boolean } }
  | { existingVolume: { volumeId: string; deleteOnTermination: boolean } };

function bootSource(body: ServerCreateBody): BootSource {
  const s = body.server;
  const bdms = s.block_device_mapping_v2 ?? [];
  if (bdms.length === 0) {
    if (!s.imageRef) throw new ApiError(400, 'Missing imageRef attribute');
    return { imageId: s.imageRef.toLowerCase() };
  }
  const [bdm] = bdms;
  // An existing volume as the root disk: nova-api takes its size and image metadata from Cinder.
  if (
    bdms.length === 1 &&
    bdm &&
    bdm.source_type === 'volume' &&
    bdm.destination_type === 'volume' &&
    Number(bdm.boot_index) === 0 &&
    bdm.uuid
  ) {
    return {
      existingVolume: {
        volumeId: bdm.uuid.toLowerCase(),
        deleteOnTermination: isTrue(bdm.delete_on_termination),
      },
    };
  }
  // The image as the local root disk (python-openstackclient sends this for a plain image boot): as imageRef.
  if (
    bdms.length === 1 &&
    bdm &&
    bdm.source_type === 'image' &&
    (bdm.destination_type ?? 'local') === 'local' &&
    Number(bdm.boot_index) === 0 &&
    bdm.uuid
  ) {
    if (s.imageRef && s.imageRef.toLowerCase() !== bdm.uuid.toLowerCase()) {
      throw new ApiError(400, 'Block Device Mapping is Invalid: imageRef and the boot image differ.');
    }
    return { imageId: bdm.uuid.toLowerCase() };
  }
  if (
    bdms.length !== 1 ||
    !bdm ||
    bdm.source_type !== 'image' ||
    bdm.destination_type !== 'volume' ||
    Number(bdm.boot_index) !== 0 ||
    !bdm.uuid
  ) {
    throw unsupported(
      'A block_device_mapping_v2 other than the image as root disk, one boot volume made from an image ' +
        '(source_type image, destination_type local or volume, boot_index 0) or one existing boot volume ' +
        '(source_type volume, destination_type volume, boot_index 0)',
    );
  }
  if (bdm.volume_size === undefined || bdm.volume_size === null) {
    throw new ApiError(
      400,
      "Block Device Mapping is Invalid: Images with destination_type 'volume' need to have a non-zero size specified",
    );
  }
  if (s.imageRef && s.imageRef.toLowerCase() !== bdm.uuid.toLowerCase()) {
    throw new ApiError(400, 'Block Device Mapping is Invalid: imageRef and the boot volume image differ.');
  }
  return {
    imageId: bdm.uuid.toLowerCase(),
    bootVolume: { sizeGb: Number(bdm.volume_size), deleteOnTermination: isTrue(bdm.delete_on_termination) },
  };
}

/** An existing boot volume checked as nova-api checks it (400s), with its size and the image it holds. */
async function resolveBootSource(
  deps: ApiDeps,
  ctx: RequestContext,
  source: BootSource,
): Promise<{
  imageId: string;
  bootVolume?: NonNullable<BootRequest['bootVolume']> & { deleteOnTermination: boolean };
}> {
  if (!('existingVolume' in source)) return source;
  const { volumeId, deleteOnTermination } = source.existingVolume;
  const volume = await checkExistingBootVolume(volumeId, (id) =>
    deps.cloud.cinder.getVolume(id, { projectId: ctx.projectId, roles: ctx.roles }),
  );
  return {
    imageId: volume.imageId,
    bootVolume: { sizeGb: volume.sizeGb, deleteOnTermination, volumeId: volume.id },
  };
}

/**
 * Nova's network rules: explicit uuids; `none` (2.37) no NIC at all; `auto` (or none given before 2.37)
 * the one network available. Before 2.37 a project with no network at all boots without a NIC, as Nova's
 * validate_networks allows; `auto` there would ask Neutron to allocate a topology, which bootflow does not.
 */
async function resolveNetworks(
  deps: ApiDeps,
  lookups: CreateLookups,
  ctx: RequestContext,
  networks: ServerCreateBody['server']['networks'],
): Promise<string[]> {
  const viewer = { projectId: ctx.projectId, roles: ctx.roles };
  if (networks === 'none') return [];
  if (networks === undefined || networks === 'auto') {
    // neutronv2 API _get_available_networks: the project's own non-shared networks, then the shared ones.
    const visible = await deps.cloud.neutron.listNetworks(viewer);
    const available = [
      ...visible.filter((n) => n.projectId === ctx.projectId && !n.shared),
      ...visible.filter((n) => n.shared),
    ];
    if (available.length > 1) {
      throw new ApiError(
        409,
        'More than one possible network found. Specify network ID(s) to select which one(s) to connect to.',
      );
    }
    const [only] = available;
    if (!only && networks === undefined) return [];
    if (!only)
      throw new ApiError(400, `Unable to automatically allocate a network for project ${ctx.projectId}`);
    return [only.id];
  }
  if (networks.length === 0) throw unsupported('A server without a network');
  const ids: string[] = [];
  for (const entry of networks) {
    if (entry.port !== undefined && entry.port !== null) throw unsupported('Booting on an existing port');
    if (entry.fixed_ip !== undefined) throw unsupported('Requesting a fixed IP');
    if (entry.uuid === undefined)
      throw new ApiError(400, 'Bad networks format: network uuid is not in proper format');
    const network = await lookups.network(entry.uuid.toLowerCase(), viewer).catch((err: unknown) => {
      if (err instanceof CloudError && err.type === 'NotFound')
        throw new ApiError(400, `Network ${entry.uuid} could not be found.`);
      throw err;
    });
    if (network.id !== entry.uuid.toLowerCase())
      throw new ApiError(400, `Network ${entry.uuid} could not be found.`);
    ids.push(network.id);
  }
  return ids;
}

/** The typed failure under a workflow's and its activities' wrappers. */
export function innermostFailure(err: unknown): unknown {
  let cause: unknown = err instanceof WorkflowFailedError ? err.cause : err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  return cause;
}

/** How a workflow that failed answers (its typed failure): a boot before its record, a console read. */
export function failureToApiError(err: unknown): ApiError {
  const cause = innermostFailure(err);
  if (cause instanceof ApplicationFailure) {
    const status =
      cause.type === 'QuotaExceeded' || cause.type === 'Forbidden'
        ? 403
        : cause.type === 'Conflict'
          ? 409
          : [
                'BadRequest',
                'NotFound',
                'FlavorDiskTooSmall',
                'FlavorMemoryTooSmall',
                'ImageNotActive',
                'InvalidVolume',
              ].includes(cause.type ?? '')
            ? 400
            : 500;
    return new ApiError(status, status === 500 ? 'Unexpected API Error.' : cause.message);
  }
  return new ApiError(500, 'Unexpected API Error.');
}

/**
 * nova-api's part of the create, before it answers: the quota claim (held by the instance uuid, so the
 * workflow's own claim finds it and counts nothing twice) and the instance row in building/scheduling
 * with its create action (the workflow's record step finds it by uuid and request id and writes nothing),
 * in one transaction: a failure leaves neither.
 */
async function recordInstance(
  deps: ApiDeps,
  ctx: RequestContext,
  boot: Omit<BootRequest, 'auth'>,
  quota: QuotaAmounts,
  placed: PlacementFields,
  reservationId: string,
): Promise<void> {
  await recordInstanceRow(deps, ctx, boot, quota, placed, reservationId).catch((err: unknown) => {
    // The hint's group deleted since it was checked: still InstanceGroupNotFound's 400.
    if (err instanceof CloudError && err.type === 'NotFound' && err.details.groupUuid !== undefined)
      throw new ApiError(400, err.message);
    throw err;
  });
}

function recordInstanceRow(
  deps: ApiDeps,
  ctx: RequestContext,
  boot: Omit<BootRequest, 'auth'>,
  quota: QuotaAmounts,
  placed: PlacementFields,
  reservationId: string,
): Promise<Instance> {
  return deps.cloud.nova.createInstance(
    {
      uuid: boot.instanceUuid as string,
      requestId: boot.requestId,
      name: boot.name,
      projectId: ctx.projectId,
      userId: ctx.userId,
      flavor: boot.flavor,
      ...(boot.bootVolume ? { bootFromVolume: true } : { imageRef: boot.image }),
      networks: boot.networks,
      ...(boot.availabilityZone !== undefined ? { availabilityZone: boot.availabilityZone } : {}),
      ...(boot.keyName !== undefined ? { keyName: boot.keyName } : {}),
      ...(boot.metadata !== undefined ? { metadata: boot.metadata } : {}),
      ...(boot.userData !== undefined ? { userData: boot.userData } : {}),
      ...(boot.accessIPv4 !== undefined ? { accessIPv4: boot.accessIPv4 } : {}),
      ...(boot.accessIPv6 !== undefined ? { accessIPv6: boot.accessIPv6 } : {}),
      ...(boot.tags !== undefined ? { tags: boot.tags } : {}),
      ...(placed.serverGroup !== undefined ? { serverGroup: placed.serverGroup } : {}),
      ...(placed.schedulerHints !== undefined ? { schedulerHints: placed.schedulerHints } : {}),
      autoDiskConfig: placed.autoDiskConfig,
      reservationId,
    },
    quota,
  );
}

/** No workflow will build it: the row and its quota go (soft delete), so nothing is left building. */
async function removeUnstartedBuild(deps: ApiDeps, request: FastifyRequest, uuid: string): Promise<void> {
  await deps.cloud.nova.softDeleteInstance(uuid).catch((cleanup: unknown) => {
    request.log.error({ err: cleanup, instanceUuid: uuid }, 'could not remove an unstarted build');
  });
}

/** min_count / max_count as Nova reads them (max defaults to min); one existing volume boots one server. */
function instanceCount(
  s: ServerCreateBody['server'],
  source: { bootVolume?: { volumeId?: string } },
): { min: number; max: number } {
  const min = Number(s.min_count ?? 1);
  const max = Number(s.max_count ?? min);
  if (min > max) throw new ApiError(400, 'min_count must be <= max_count');
  if (max > 1 && source.bootVolume?.volumeId !== undefined)
    throw new ApiError(400, 'Cannot attach one or more volumes to multiple instances');
  return { min, max };
}

/**
 * Records and starts one build per server, as nova-api creates the instances of one request: as many as
 * the quota allows between min and max (fewer than min is 403 before anything is written; a claim lost
 * to a concurrent request undoes the others), named <name>-<n> when more than one. Each has its own workflow and request id (the first the request's,
 * then <request id>-<n>) and its own grant. Returns the uuids started.
 */
async function startBuilds(
  deps: ApiDeps,
  request: FastifyRequest,
  validated: ValidatedToken,
  ctx: RequestContext,
  fields: Omit<BootRequest, 'auth' | 'requestId' | 'instanceUuid'>,
  quota: QuotaAmounts,
  count: { min: number; max: number },
  placed: PlacementFields,
  leave: () => void,
  reservationId: string,
): Promise<string[]> {
  // The first grant's signature (off the event loop, in WebCrypto's thread pool) runs beside the claims.
  const firstGrant = grantFor(deps, validated, 'createInstance', bootWorkflowId(request.id));
  firstGrant.catch(() => undefined); // awaited below, unless the claims fail first
  const builds: Array<Omit<BootRequest, 'auth'>> = [];
  const usage = count.max > 1 ? await deps.cloud.nova.getQuotaUsage(ctx.projectId) : undefined;
  const allowed = usage ? instancesAllowed(ctx.projectId, usage, quota, count) : 1;
  for (let index = 0; index < allowed; index++) {
    const build = {
      ...fields,
      requestId: index === 0 ? request.id : `${request.id}-${index + 1}`,
      instanceUuid: randomUUID(),
      name: count.max > 1 ? `${fields.name}-${index + 1}`.slice(0, 255) : fields.name,
    };
    try {
      await recordInstance(deps, ctx, build, quota, placed, reservationId);
    } catch (err) {
      // A claim that a concurrent request beat: this request creates nothing.
      for (const recorded of builds) await removeUnstartedBuild(deps, request, recorded.instanceUuid!);
      throw err;
    }
    builds.push(build);
  }
  leave(); // the records are written: the start RPCs need no admission slot
  for (const [started, build] of builds.entries()) {
    const workflowId = bootWorkflowId(build.requestId);
    try {
      // Not even the caller's token crosses into Temporal: a grant good for this one workflow only.
      const auth = await (started === 0
        ? firstGrant
        : grantFor(deps, validated, 'createInstance', workflowId));
      // Only the start RPC: the build runs on after the answer, as nova-conductor's after Nova's cast.
      await deps.temporal.workflow.start('createInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId,
        args: [{ ...build, auth } satisfies BootRequest],
        ...(deps.eagerStart ? { requestEagerStart: true } : {}),
      });
    } catch (err) {
      // No server is left building without a workflow (those started build on).
      for (const unstarted of builds.slice(started)) {
        await removeUnstartedBuild(deps, request, unstarted.instanceUuid!);
      }
      throw err;
    }
  }
  return builds.map((b) => b.instanceUuid!);
}

/**
 * `lookups` keeps the flavor, image and network reads of a burst (create-lookups.ts); `leave` gives up the
 * create's admission slot (create-admission.ts) once its own work is done.
 */
async function createServer(
  deps: ApiDeps,
  lookups: CreateLookups,
  request: FastifyRequest,
  reply: FastifyReply,
  leave: () => void,
) {
  const { ctx, validated } = authOf(request);
  const body = parseBody(serverCreateSchema(request.microversion.minor), request.body);
  enforcePolicy(ctx, 'os_compute_api:servers:create', ctx.projectId);
  refuseUnsupported(body);
  const s = body.server;
  // compute/api.py _check_metadata_properties_quota: MetadataLimitExceeded is a 403.
  if (s.metadata && Object.keys(s.metadata).length > MAX_METADATA_ITEMS)
    throw new ApiError(403, `Maximum number of metadata items exceeds ${MAX_METADATA_ITEMS}`);
  const flavorId = idFromHref(s.flavorRef);
  // A private flavor the caller's project has no access to is not found (Nova's get_flavor_by_flavor_id).
  const flavor = (await lookups.flavors({ projectId: ctx.projectId, admin: isAdmin(ctx) })).find(
    (f) => f.id === flavorId,
  );
  if (!flavor) throw new ApiError(400, `Flavor ${flavorId} could not be found.`);
  const source = await resolveBootSource(deps, ctx, bootSource(body));
  const image = await lookups.image(source.imageId, ctx).catch((err: unknown) => {
    if (err instanceof CloudError && (err.type === 'NotFound' || err.type === 'BadRequest'))
      throw new ApiError(400, 'Can not find requested image');
    throw err;
  });
  if (image.id !== source.imageId) throw new ApiError(400, 'Can not find requested image');
  if (image.status !== 'active') throw new ApiError(400, `Image ${image.id} is not active.`);
  if (s.key_name !== undefined) {
    await deps.cloud.nova.getKeyPair(ctx.userId, s.key_name).catch((err: unknown) => {
      if (err instanceof CloudError && err.type === 'NotFound')
        throw new ApiError(400, 'Invalid key_name provided.');
      throw err;
    });
  }
  const networkIds = await resolveNetworks(deps, lookups, ctx, s.networks);
  const serverGroup = await requestedGroup(deps, ctx, body);
  const schedulerHints = affinityHints(body);
  const autoDiskConfig = resolveAutoDiskConfig(image, s['OS-DCF:diskConfig']);
  if (s.availability_zone !== undefined) {
    const zones = new Set((await deps.cloud.nova.listComputeHosts()).map((h) => h.availabilityZone));
    if (!zones.has(s.availability_zone))
      throw new ApiError(400, 'The requested availability zone is not available');
  }
  const bootVolumeGb = source.bootVolume?.sizeGb ?? null;
  // compute/api.py _validate_flavor_image: the image against the flavor (or the boot volume), now.
  checkImageFitsFlavor(image, flavor, bootVolumeGb);

  // From 2.52 the schema has checked each tag (the type only knows that the key may be there).
  const tags = 'tags' in s ? (s.tags as string[] | undefined) : undefined;
  const fields: Omit<BootRequest, 'auth' | 'requestId' | 'instanceUuid'> = {
    name: s.name,
    flavor: flavor.id,
    image: image.id,
    networks: networkIds,
    ...(source.bootVolume ? { bootVolume: source.bootVolume } : {}),
    ...(s.availability_zone !== undefined ? { availabilityZone: s.availability_zone } : {}),
    ...(s.key_name !== undefined ? { keyName: s.key_name } : {}),
    ...(s.metadata !== undefined && Object.keys(s.metadata).length > 0 ? { metadata: s.metadata } : {}),
    ...(s.user_data !== undefined ? { userData: s.user_data } : {}),
    ...(s.accessIPv4 !== undefined ? { accessIPv4: s.accessIPv4 } : {}),
    ...(s.accessIPv6 !== undefined ? { accessIPv6: compactIpv6(s.accessIPv6) } : {}),
    ...(tags !== undefined && tags.length > 0 ? { tags: [...new Set(tags)] } : {}),
  };
  // An existing boot volume is Cinder's quota already: only a volume the boot makes is claimed.
  const quota = bootQuota(flavor, source.bootVolume?.volumeId ? null : bootVolumeGb);
  // The request's reservation id, shared by its servers (Nova's utils.generate_uid('r')).
  const reservationId = `r-${Array.from({ length: 8 }, () => RESERVATION_SYMBOLS[randomInt(36)]).join('')}`;
  const uuids = await startBuilds(
    deps,
    request,
    validated,
    ctx,
    fields,
    quota,
    instanceCount(s, source),
    {
      ...(serverGroup !== undefined ? { serverGroup } : {}),
      ...(schedulerHints !== undefined ? { schedulerHints } : {}),
      autoDiskConfig,
    },
    leave,
    reservationId,
  );
  // return_reservation_id: the reservation id only, no Location (servers.py create).
  if (isTrue(s.return_reservation_id)) return reply.code(202).send({ reservation_id: reservationId });
  const uuid = uuids[0]!;
  const links = resourceLinks(deps, 'servers', uuid);
  return reply
    .code(202)
    .header('location', links[0]!.href)
    .send({
      server: {
        id: uuid,
        links,
        'OS-DCF:diskConfig': autoDiskConfig ? 'AUTO' : 'MANUAL',
        security_groups: s.security_groups ?? [{ name: 'default' }],
        adminPass: s.adminPass ?? generatePassword(),
      },
    });
}

const RESERVATION_SYMBOLS = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** API statuses → vm_states (common.task_and_vm_state_from_status), for the states bootflow has. */
const STATUS_TO_VM_STATE: Record<string, string> = {
  ACTIVE: 'active',
  BUILD: 'building',
  ERROR: 'error',
  SHUTOFF: 'stopped',
  DELETED: 'deleted',
};

function parseBool(name: string, raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === '' || TRUE_STRINGS.includes(v)) return true;
  if (FALSE_STRINGS.includes(v)) return false;
  throw new ApiError(400, `Invalid value '${raw}' for ${name}`);
}

/** common.is_locked: oslo's strict boolean, else InvalidInput (400) with oslo's words. */
function strictBool(raw: string): boolean {
  const v = raw.toLowerCase();
  if (TRUE_STRINGS.includes(v)) return true;
  if (FALSE_STRINGS.includes(v)) return false;
  const accepted = [...TRUE_STRINGS, ...FALSE_STRINGS]
    .sort()
    .map((x) => `'${x}'`)
    .join(', ');
  throw new ApiError(
    400,
    `Invalid input received: Unrecognized value '${raw}', acceptable values are: ${accepted}`,
  );
}

function parseChangesSince(name: string, raw: string): number {
  const t = /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(t)) {
    throw new ApiError(
      400,
      `Invalid input for query parameters ${name}. Value: ${raw}. '${raw}' is not a 'date-time'`,
    );
  }
  return t;
}

function regexOf(name: string, raw: string): RegExp {
  try {
    return new RegExp(raw);
  } catch {
    throw new ApiError(400, `Invalid regular expression for ${name}: ${raw}`);
  }
}

async function listServers(deps: ApiDeps, request: FastifyRequest, detail: boolean) {
  const { ctx } = authOf(request);
  const q = queryOf(request);
  const allTenants = q.all_tenants !== undefined && parseBool('all_tenants', q.all_tenants);
  if (allTenants) {
    enforcePolicy(ctx, `os_compute_api:servers:${detail ? 'detail' : 'index'}:get_all_tenants`);
  } else {
    enforcePolicy(ctx, `os_compute_api:servers:${detail ? 'detail' : 'index'}`, ctx.projectId);
  }
  const projectFilter = allTenants ? (q.project_id ?? q.tenant_id) : ctx.projectId;
  const limit = parseLimit(q.limit);
  const changesSince =
    q['changes-since'] !== undefined ? parseChangesSince('changes-since', q['changes-since']) : undefined;
  const deletedAsked = q.deleted !== undefined && isAdmin(ctx) && parseBool('deleted', q.deleted);
  let instances = await deps.cloud.nova.listInstances({
    ...(projectFilter !== undefined ? { projectId: projectFilter } : {}),
    ...(allTenants ? { allProjects: true } : {}),
    // changes-since shows what was deleted since then, as Nova does.
    includeDeleted: changesSince !== undefined || deletedAsked,
  });
  if (deletedAsked && changesSince === undefined) instances = instances.filter((i) => i.deleted);
  if (changesSince !== undefined) instances = instances.filter((i) => i.updatedAt >= changesSince);
  if (q.name !== undefined) {
    const re = regexOf('name', q.name);
    instances = instances.filter((i) => re.test(i.name));
  }
  if (q.status !== undefined) {
    const vmState = STATUS_TO_VM_STATE[q.status.toUpperCase()];
    instances = vmState === undefined ? [] : instances.filter((i) => i.vmState === vmState);
  }
  if (q.image !== undefined) {
    const imageId = idFromHref(q.image);
    instances = instances.filter((i) => i.imageRef === imageId);
  }
  if (q.flavor !== undefined) {
    const flavorId = idFromHref(q.flavor);
    instances = instances.filter((i) => i.flavor.id === flavorId);
  }
  if (q.availability_zone !== undefined)
    instances = instances.filter((i) => i.availabilityZone === q.availability_zone);
  if (q.key_name !== undefined) instances = instances.filter((i) => i.keyName === q.key_name);
  if (q.reservation_id !== undefined)
    instances = instances.filter((i) => i.reservationId === q.reservation_id);
  if (q.locked !== undefined && atLeast(request, 2, 73)) {
    const locked = strictBool(q.locked);
    instances = instances.filter((i) => i.locked === locked);
  }
  if (q.user_id !== undefined && (isAdmin(ctx) || atLeast(request, 2, 83)))
    instances = instances.filter((i) => i.userId === q.user_id);
  if (q.host !== undefined && isAdmin(ctx)) instances = instances.filter((i) => i.host === q.host);
  if (q.ip !== undefined) {
    const re = regexOf('ip', q.ip);
    const extras = await loadServerExtras(deps, instances);
    instances = instances.filter((i) =>
      Object.values(extras.addresses.get(i.uuid) ?? {}).some((list) => list.some((a) => re.test(a.addr))),
    );
  }
  const { page, more } = paginate(instances, (i) => i.uuid, limit, q.marker);
  const path = detail ? 'servers/detail' : 'servers';
  const links = more ? { servers_links: nextLink(deps, request, path, page.at(-1)!.uuid) } : {};
  if (!detail) return { servers: page.map((i) => serverBasic(deps, i)), ...links };
  const extras = await loadServerExtras(deps, page);
  return { servers: page.map((i) => serverDetail(deps, request, ctx, i, extras)), ...links };
}

async function showServer(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:servers:show');
  const extras = await loadServerExtras(deps, [instance]);
  return { server: serverDetail(deps, request, ctx, instance, extras, { show: true }) };
}

async function updateServer(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id } = request.params as { id: string };
  const body = parseBody(serverUpdateSchema(request.microversion.minor), request.body);
  let instance = await visibleInstance(deps, ctx, id, 'os_compute_api:servers:update');
  const s = body.server as Record<string, unknown>;
  if (s.description !== undefined && s.description !== null) throw unsupported('A server description');
  const { name, accessIPv4, accessIPv6 } = body.server;
  const diskConfig = body.server['OS-DCF:diskConfig'];
  if (
    name !== undefined ||
    accessIPv4 !== undefined ||
    accessIPv6 !== undefined ||
    diskConfig !== undefined
  ) {
    instance = await deps.cloud.nova.updateInstance(instance.uuid, {
      ...(name !== undefined ? { name } : {}),
      ...(accessIPv4 !== undefined ? { accessIPv4 } : {}),
      ...(accessIPv6 !== undefined ? { accessIPv6: compactIpv6(accessIPv6) } : {}),
      // servers.py update: auto_disk_config is saved with the rest (no image check, as Nova).
      ...(diskConfig !== undefined ? { autoDiskConfig: diskConfig === 'AUTO' } : {}),
    });
  }
  const extras = await loadServerExtras(deps, [instance]);
  // From 2.75 PUT answers with the same body as show; before, Nova's narrower update view.
  return {
    server: serverDetail(deps, request, ctx, instance, extras, {
      show: true,
      update: !atLeast(request, 2, 75),
    }),
  };
}

/**
 * Keystone's operation grant for the one workflow this request starts (see BootAuth), made from the token
 * the request was authenticated with, without validating it again.
 */
export async function grantFor(
  deps: ApiDeps,
  validated: ValidatedToken,
  workflowType: string,
  workflowId: string,
): Promise<{ grant: string }> {
  const { grant } = await deps.cloud.keystone.grantFor(validated, { workflowType, workflowId });
  return { grant };
}

async function deleteServer(deps: ApiDeps, request: FastifyRequest, reply: FastifyReply) {
  const { ctx, validated } = authOf(request);
  const { id } = request.params as { id: string };
  const instance = await visibleInstance(deps, ctx, id, 'os_compute_api:servers:delete');
  refuseIfLocked(ctx, instance);
  const input: DeleteRequest = {
    requestId: request.id,
    auth: await grantFor(deps, validated, 'deleteInstance', deleteWorkflowId(instance.uuid)),
    instanceUuid: instance.uuid,
  };
  const workflowId = deleteWorkflowId(instance.uuid);
  try {
    await deps.temporal.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId,
      args: [input],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    // A delete of this server is already running: this one is answered the same, once the running
    // workflow is checked to be that delete (anyone with the Temporal port can squat the id).
    try {
      await checkOwnership(deps.temporal, workflowId, undefined, deleteOwnership(instance.uuid));
    } catch (refused) {
      if (!(refused instanceof ForeignWorkflowError)) throw refused;
      deps.log.warn({ workflowId, why: refused.why }, 'delete refused: a foreign workflow holds its id');
      throw new ApiError(409, `Cannot delete server ${instance.uuid}: ${refused.message}`);
    }
  }
  return reply.code(204).send();
}

async function serverIps(deps: ApiDeps, request: FastifyRequest) {
  const { ctx } = authOf(request);
  const { id, network } = request.params as { id: string; network?: string };
  const instance = await visibleInstance(
    deps,
    ctx,
    id,
    network === undefined ? 'os_compute_api:ips:index' : 'os_compute_api:ips:show',
  );
  const extras = await loadServerExtras(deps, [instance]);
  const addresses = Object.fromEntries(
    Object.entries(extras.addresses.get(instance.uuid) ?? {}).map(([name, list]) => [
      name,
      list.map((a) => ({ version: a.version, addr: a.addr })),
    ]),
  );
  if (network === undefined) return { addresses };
  const list = addresses[network];
  if (!list) throw new ApiError(404, 'Instance is not a member of specified network');
  return { [network]: list };
}

export async function serverRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const creates = new AdmissionGate(deps.concurrentCreates ?? DEFAULT_CONCURRENT_CREATES);
  const lookups = new CreateLookups(deps.cloud);
  app.post('/servers', async (request, reply) => {
    const leave = await creates.enter();
    try {
      return await createServer(deps, lookups, request, reply, leave);
    } finally {
      leave();
    }
  });
  app.get('/servers', (request) => listServers(deps, request, false));
  app.get('/servers/detail', (request) => listServers(deps, request, true));
  app.get('/servers/:id', (request) => showServer(deps, request));
  app.put('/servers/:id', (request) => updateServer(deps, request));
  app.delete('/servers/:id', (request, reply) => deleteServer(deps, request, reply));
  app.get('/servers/:id/ips', (request) => serverIps(deps, request));
  app.get('/servers/:id/ips/:network', (request) => serverIps(deps, request));
}
