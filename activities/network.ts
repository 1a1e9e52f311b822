/**
 * neutron-server on the `network` queue: network visibility for nova-api, ports with fixed IPs, port binding
 * to the chosen host, the agent's "device up" report that makes a port ACTIVE (network-vif-plugged), and
 * clean-up. Tokens are validated as keystonemiddleware would (allow-expired once the request is accepted).
 */
import { CloudError } from '../cloud/errors';
import type { DhcpDetails, Neutron } from '../cloud/neutron';
import type { NetworkRef, PortDescription } from '../workflows/types';
import { adaptAll } from './failures';
import { contextForOngoingWork, contextOfGrant, type TokenValidator } from './identity';

export interface NetworkServices {
  neutron: Neutron;
  identity: TokenValidator;
}

export interface CreatePortsInput {
  token: string;
  instanceUuid: string;
  /** The build attempt: ports are deleted on reschedule, and the next host gets new ones. */
  attempt: number;
  projectId: string;
  networks: NetworkRef[];
}

type Port = Awaited<ReturnType<Neutron['getPort']>>;

function describe(port: Port, networks: Map<string, string>): PortDescription {
  return {
    portId: port.id,
    networkId: port.networkId,
    networkName: networks.get(port.networkId) ?? port.networkId,
    macAddress: port.macAddress,
    fixedIps: port.fixedIps.map((ip) => ({ subnetId: ip.subnetId, ipAddress: ip.ipAddress })),
    vifType: port.bindingVifType,
  };
}

/** The request key of a boot's port: one per instance, attempt and requested network (idempotent retries). */
export function portRequestKey(instanceUuid: string, attempt: number, index: number): string {
  return `${instanceUuid}:${attempt}:${index}`;
}

export function createNetworkActivities({ neutron, identity }: NetworkServices) {
  return adaptAll({
    /** nova-api's check that each requested network exists and is visible to the caller's project. */
    async validateNetworks(input: { token: string; networks: string[] }): Promise<NetworkRef[]> {
      const ctx = await contextOfGrant(identity, input.token);
      const found: NetworkRef[] = [];
      for (const ref of input.networks) {
        const network = await neutron.getNetwork(ref, ctx);
        found.push({ id: network.id, name: network.name });
      }
      return found;
    },

    /** One port with a fixed IP per requested network; IpAddressGenerationFailure when a subnet is full. */
    async createPorts(input: CreatePortsInput): Promise<PortDescription[]> {
      await contextForOngoingWork(identity, input.token);
      const names = new Map(input.networks.map((n) => [n.id, n.name]));
      const ports: PortDescription[] = [];
      for (const [index, network] of input.networks.entries()) {
        const port = await neutron.createPort({
          requestKey: portRequestKey(input.instanceUuid, input.attempt, index),
          networkId: network.id,
          projectId: input.projectId,
          deviceId: input.instanceUuid,
          deviceOwner: 'compute:nova',
        });
        ports.push(describe(port, names));
      }
      return ports;
    },

    /**
     * ML2 binding to the host (binding:host_id); PortBindingFailed when no driver can bind there. Each bound
     * port carries its network's DHCP details (subnet, DHCP port), which the host's DHCP agent serves.
     */
    async bindPorts({ ports, host }: { ports: PortDescription[]; host: string }): Promise<PortDescription[]> {
      const names = new Map(ports.map((p) => [p.networkId, p.networkName]));
      const dhcp = new Map<string, DhcpDetails | null>();
      const bound: PortDescription[] = [];
      for (const port of ports) {
        const described = describe((await neutron.bindPort(port.portId, host)).port, names);
        if (!dhcp.has(port.networkId)) dhcp.set(port.networkId, await neutron.ensureDhcpPort(port.networkId));
        bound.push({ ...described, dhcp: dhcp.get(port.networkId) ?? null });
      }
      return bound;
    },

    /**
     * The DHCP agent's get_active_networks_info, for the networks a host serves: the DHCP details of those
     * that still exist with a DHCP-enabled subnet (the others are gone: the agent stops serving them).
     */
    async dhcpNetworks({ networkIds }: { networkIds: string[] }): Promise<DhcpDetails[]> {
      const found: DhcpDetails[] = [];
      for (const networkId of networkIds) {
        try {
          const details = await neutron.ensureDhcpPort(networkId);
          if (details) found.push(details);
        } catch (err) {
          if (!(err instanceof CloudError && err.type === 'NotFound')) throw err;
        }
      }
      return found;
    },

    /** The L2 agent's update_device_up after it wired the ports on `host`: they go ACTIVE. */
    async reportDevicesUp({ portIds, host }: { portIds: string[]; host: string }): Promise<void> {
      for (const portId of portIds) await neutron.markPortActive(portId, host);
    },

    /** Port statuses, for the workflow's bounded wait on network-vif-plugged. */
    async portStatuses({ portIds }: { portIds: string[] }): Promise<Record<string, string>> {
      const statuses: Record<string, string> = {};
      for (const portId of portIds) {
        try {
          statuses[portId] = (await neutron.getPort(portId)).status;
        } catch {
          statuses[portId] = 'MISSING';
        }
      }
      return statuses;
    },

    async listInstancePorts({ instanceUuid }: { instanceUuid: string }): Promise<PortDescription[]> {
      const ports = await neutron.listPorts({ deviceId: instanceUuid });
      return ports.map((p) => describe(p, new Map()));
    },

    /** Unbinds and deletes every port of the instance (their IPs are freed); idempotent. */
    async deleteInstancePorts({ instanceUuid }: { instanceUuid: string }): Promise<string[]> {
      const ports = await neutron.listPorts({ deviceId: instanceUuid });
      for (const port of ports) {
        await neutron.unbindPort(port.id);
        await neutron.deletePort(port.id);
      }
      return ports.map((p) => p.id);
    },
  });
}

export type NetworkActivities = ReturnType<typeof createNetworkActivities>;
