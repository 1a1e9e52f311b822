/**
 * The read side of the API for the client (`server show/list`, `hypervisor list`, `audit`), served by the
 * roles that own the data so that the client never opens a database: nova-api and cinder-api on the
 * controller, neutron-server on the network node. Each call validates the caller's token and applies Nova's
 * default policy itself; another project's server is NotFound, as Nova answers.
 */
import { auditController, type ControllerAudit, type LeakFinding } from '../cloud/audit';
import type { Cloud } from '../cloud/index';
import { CloudError } from '../cloud/errors';
import { authorize, enforce, enforceVisible, type Keystone, type RequestContext } from '../cloud/keystone';
import type { Instance } from '../cloud/nova';
import type { Neutron } from '../cloud/neutron';
import { resourceUse } from '../cloud/placement';
import type { HypervisorView, ServerAddress, ServerRecord, ServerVolume } from '../workflows/operator-types';
import { adaptAll } from './failures';
import { contextOfGrant, type TokenValidator } from './identity';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function isAdmin(ctx: RequestContext): boolean {
  return ctx.roles.includes('admin');
}

function notFound(ref: string): CloudError {
  return new CloudError('NotFound', `No server with a name or ID of '${ref}' exists.`, { server: ref });
}

export interface ServerFilter {
  /** Every project's servers (admin only), as `--all-projects`. */
  allProjects?: boolean;
  /** One server by uuid or by name (unique among the servers the caller may see). */
  nameOrId?: string;
}

export type OperatorControllerServices = Pick<
  Cloud,
  'keystone' | 'nova' | 'placement' | 'glance' | 'cinder' | 'dataDir'
> &
  Partial<Pick<Cloud, 'neutron' | 'scheduler' | 'clock'>>;

async function recordOf(cloud: OperatorControllerServices, ctx: RequestContext, instance: Instance) {
  const faults = await cloud.nova.listFaults(instance.uuid);
  const fault = faults.reduce<(typeof faults)[number] | undefined>(
    (latest, f) => (!latest || f.createdAt >= latest.createdAt ? f : latest),
    undefined,
  );
  let imageName: string | null = null;
  if (instance.imageRef) {
    imageName = await cloud.glance
      .getImage(instance.imageRef, ctx)
      .then((image) => image.name)
      .catch(() => null);
  }
  const record: ServerRecord = {
    id: instance.uuid,
    name: instance.name,
    status: cloud.nova.apiStatus(instance),
    vmState: instance.vmState,
    taskState: instance.taskState,
    powerState: instance.powerState,
    // OS-EXT-SRV-ATTR:host is admin-only under Nova's default policy: others see null, as the API omits it.
    host: authorize(ctx, 'os_compute_api:os-extended-server-attributes', { projectId: instance.projectId })
      .allowed
      ? instance.host
      : null,
    projectId: instance.projectId,
    userId: instance.userId,
    flavor: instance.flavor.name,
    image: instance.bootFromVolume
      ? null
      : { id: instance.imageRef ?? '', name: imageName ?? instance.imageRef ?? '' },
    bootFromVolume: instance.bootFromVolume,
    requestId: instance.requestId,
    created: new Date(instance.createdAt).toISOString(),
    launchedAt: instance.launchedAt === null ? null : new Date(instance.launchedAt).toISOString(),
    ...(fault && instance.vmState === 'error'
      ? {
          fault: {
            code: fault.code,
            message: fault.message,
            details: fault.details,
            created: new Date(fault.createdAt).toISOString(),
          },
        }
      : {}),
  };
  return record;
}

/** A read about some servers, with the caller's token. */
export interface ServersInput {
  token: string;
  instanceUuids: string[];
}

/** One server by uuid, or by name among the caller's project's servers (unique), as `openstack` resolves it. */
async function findOne(
  cloud: OperatorControllerServices,
  ctx: RequestContext,
  ref: string,
): Promise<Instance> {
  if (UUID.test(ref))
    return cloud.nova.getInstance(ref.toLowerCase()).catch((err: unknown) => {
      if (err instanceof CloudError && err.type === 'NotFound') throw notFound(ref);
      throw err;
    });
  const matching = (await cloud.nova.listInstances({ projectId: ctx.projectId })).filter(
    (i) => i.name === ref,
  );
  if (matching.length === 0) throw notFound(ref);
  if (matching.length > 1)
    throw new CloudError('BadRequest', `More than one server exists with the name '${ref}'; use its ID.`, {
      server: ref,
      matches: matching.length,
    });
  return matching[0] as Instance;
}

export function createOperatorControllerActivities(cloud: OperatorControllerServices) {
  const { keystone, nova, placement, cinder } = cloud;
  return adaptAll({
    /** nova-api's servers index/show: records the caller may see, newest first. */
    async findServers({ token, filter }: { token: string; filter: ServerFilter }): Promise<ServerRecord[]> {
      const ctx = await contextOfGrant(keystone, token);
      const ref = filter.nameOrId;
      if (ref !== undefined && UUID.test(ref)) {
        const instance = await nova.getInstance(ref.toLowerCase()).catch((err: unknown) => {
          if (err instanceof CloudError && err.type === 'NotFound') throw notFound(ref);
          throw err;
        });
        enforceVisible(ctx, 'compute:server:show', { projectId: instance.projectId }, notFound(ref).message);
        return [await recordOf(cloud, ctx, instance)];
      }
      if (filter.allProjects) enforce(ctx, 'compute:servers:list:all_projects');
      else enforce(ctx, ref === undefined ? 'compute:server:list' : 'compute:server:show');
      const instances = await nova.listInstances(
        filter.allProjects ? { allProjects: true } : { projectId: ctx.projectId },
      );
      const matching = ref === undefined ? instances : instances.filter((i) => i.name === ref);
      if (ref !== undefined && matching.length === 0) throw notFound(ref);
      if (ref !== undefined && matching.length > 1) {
        throw new CloudError(
          'BadRequest',
          `More than one server exists with the name '${ref}'; use its ID.`,
          { server: ref, matches: matching.length },
        );
      }
      matching.sort((a, b) => b.createdAt - a.createdAt || (a.uuid < b.uuid ? -1 : 1));
      return Promise.all(matching.map((instance) => recordOf(cloud, ctx, instance)));
    },

    /**
     * nova-api's os-getConsoleOutput, the part before the RPC to the host: the server the caller may see
     * (another project's is NotFound), the policy, and the host that holds its console (InstanceNotReady
     * without one, as Nova's check_instance_host).
     */
    async consoleTarget(input: { token: string; server: string }): Promise<{ uuid: string; host: string }> {
      const { token, server: nameOrId } = input;
      const ctx = await contextOfGrant(keystone, token);
      const instance = await findOne(cloud, ctx, nameOrId);
      enforceVisible(
        ctx,
        'os_compute_api:os-console-output',
        { projectId: instance.projectId },
        notFound(nameOrId).message,
      );
      if (!instance.host)
        throw new CloudError('InstanceNotReady', `Instance ${instance.uuid} is not ready`, {
          instance: instance.uuid,
        });
      return { uuid: instance.uuid, host: instance.host };
    },

    /** cinder-api: the volumes attached to each server (the caller's project's, or any for an admin). */
    async serverVolumes(input: ServersInput): Promise<Record<string, ServerVolume[]>> {
      const { token, instanceUuids } = input;
      const ctx = await contextOfGrant(keystone, token);
      const out: Record<string, ServerVolume[]> = {};
      for (const uuid of instanceUuids) {
        const volumes: ServerVolume[] = [];
        for (const attachment of await cinder.listAttachments({ instanceUuid: uuid })) {
          const volume = await cinder.getVolume(attachment.volumeId).catch(() => undefined);
          if (!volume || (volume.projectId !== ctx.projectId && !isAdmin(ctx))) continue;
          volumes.push({
            id: volume.id,
            device: attachment.mountpoint,
            sizeGb: volume.sizeGb,
            deleteOnTermination: volume.deleteOnTermination,
          });
        }
        out[uuid] = volumes;
      }
      return out;
    },

    /** `openstack hypervisor list --long`: each compute node with its state and Placement usage. */
    async listHypervisors({ token }: { token: string }): Promise<HypervisorView[]> {
      const ctx = await contextOfGrant(keystone, token);
      enforce(ctx, 'os_compute_api:os-hypervisors:list');
      const views: HypervisorView[] = [];
      for (const host of await nova.listComputeHosts()) {
        const provider = await placement.getResourceProvider(host.nodeUuid).catch(() => undefined);
        const allocations = provider ? await placement.listAllocations({ providerUuid: host.nodeUuid }) : [];
        views.push({
          id: host.nodeUuid,
          host: host.host,
          hypervisorType: host.hypervisorType,
          state: host.up ? 'up' : 'down',
          status: host.disabled ? 'disabled' : 'enabled',
          disabledReason: host.disabledReason,
          lastHeartbeat: host.lastHeartbeatAt === null ? null : new Date(host.lastHeartbeatAt).toISOString(),
          vcpus: resourceUse(provider, 'VCPU', host.vcpus),
          memoryMb: resourceUse(provider, 'MEMORY_MB', host.memoryMb),
          diskGb: resourceUse(provider, 'DISK_GB', host.diskGb),
          runningVms: allocations.length,
        });
      }
      return views;
    },

    /**
     * bootflow's leak audit, the controller's half (admin only): the services' databases, and for each
     * registered compute host the instances live there, which the workflow hands to that host's own audit.
     * The controller never reads a host's directory.
     */
    async auditController(input: { token: string; buildsInFlight?: boolean }): Promise<ControllerAudit> {
      const ctx = await contextOfGrant(keystone, input.token);
      enforce(ctx, 'bootflow:audit');
      if (!cloud.neutron || !cloud.scheduler || !cloud.clock) {
        throw new CloudError('ServiceUnavailable', 'the leak audit needs the whole controller cloud');
      }
      return auditController(cloud as Cloud, { buildsInFlight: input.buildsInFlight === true });
    },

    /**
     * The audit's activity before the hosts were asked on their queues, kept for audits started by an
     * older worker: now the controller's half only (their hosts are not audited).
     */
    async runLeakAudit(input: { token: string; buildsInFlight?: boolean }): Promise<LeakFinding[]> {
      const ctx = await contextOfGrant(keystone, input.token);
      enforce(ctx, 'bootflow:audit');
      if (!cloud.neutron || !cloud.scheduler || !cloud.clock) {
        throw new CloudError('ServiceUnavailable', 'the leak audit needs the whole controller cloud');
      }
      return (await auditController(cloud as Cloud, { buildsInFlight: input.buildsInFlight === true }))
        .findings;
    },
  });
}

export interface OperatorNetworkServices {
  neutron: Neutron;
  identity: TokenValidator | Keystone;
}

export function createOperatorNetworkActivities({ neutron, identity }: OperatorNetworkServices) {
  return adaptAll({
    /** neutron-server: each server's fixed IPs by network name (the servers API's `addresses`). */
    async serverAddresses(input: ServersInput): Promise<Record<string, Record<string, ServerAddress[]>>> {
      const { token, instanceUuids } = input;
      const ctx = await contextOfGrant(identity, token);
      const admin = ctx.roles.includes('admin');
      const networkNames = new Map<string, string>();
      const out: Record<string, Record<string, ServerAddress[]>> = {};
      for (const uuid of instanceUuids) {
        const addresses: Record<string, ServerAddress[]> = {};
        for (const port of await neutron.listPorts({ deviceId: uuid })) {
          if (port.projectId !== ctx.projectId && !admin) continue;
          if (!networkNames.has(port.networkId)) {
            const network = await neutron
              .getNetwork(port.networkId, { projectId: port.projectId, roles: ['admin'] })
              .catch(() => undefined);
            networkNames.set(port.networkId, network?.name ?? port.networkId);
          }
          const list = (addresses[networkNames.get(port.networkId) as string] ??= []);
          for (const ip of port.fixedIps) {
            list.push({ addr: ip.ipAddress, macAddress: port.macAddress, version: 4, portId: port.id });
          }
        }
        out[uuid] = addresses;
      }
      return out;
    },
  });
}

export type OperatorControllerActivities = ReturnType<typeof createOperatorControllerActivities>;
export type OperatorNetworkActivities = ReturnType<typeof createOperatorNetworkActivities>;
