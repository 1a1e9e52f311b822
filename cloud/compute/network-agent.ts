/**
 * The compute host's network agent (the OVS hybrid plug of Neutron's agent): a port gets a Linux bridge
 * `qbr<port[:11]>` and a tap device `tap<port[:11]>` for the guest (Nova's NIC_NAME_LEN is 14). Kept in
 * `<hostDir>/state/network-agent.json`; plugging and unplugging are idempotent.
 */
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../clock';
import { CloudError } from '../errors';
import { uuidSchema } from '../validation';
import { JsonStateFile } from './state-file';
import type { VifRecord } from './types';

const vifRecordSchema = z.object({
  portId: z.string(),
  macAddress: z.string(),
  bridge: z.string(),
  tap: z.string(),
  instanceUuid: z.string().nullable(),
  networkId: z.string().nullable(),
  vifType: z.string(),
  pluggedAt: z.number(),
});
const agentStateSchema = z.object({ vifs: z.record(z.string(), vifRecordSchema) });
type AgentState = z.infer<typeof agentStateSchema>;

/**
 * A Neutron port as the agent needs it. Not strict: the caller may pass the whole Port Neutron returned;
 * only these fields are read.
 */
export const plugPortSchema = z.object({
  id: uuidSchema,
  macAddress: z
    .string()
    .regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'must be a MAC address like fa:16:3e:00:00:01'),
  deviceId: z.string().max(255).nullish(),
  networkId: z.string().max(255).nullish(),
  bindingHostId: z.string().max(255).nullish(),
  bindingVifType: z.string().max(64).nullish(),
});
export type PlugPort = z.input<typeof plugPortSchema>;

export function deviceNames(portId: string): { bridge: string; tap: string } {
  const short = portId.slice(0, 11);
  return { bridge: `qbr${short}`, tap: `tap${short}` };
}

export class NetworkAgent {
  private readonly file: JsonStateFile<AgentState>;

  constructor(
    hostDir: string,
    private readonly host: string,
    private readonly clock: Clock,
  ) {
    this.file = new JsonStateFile(
      path.join(hostDir, 'state', 'network-agent.json'),
      agentStateSchema,
      () => ({
        vifs: {},
      }),
    );
  }

  async plug(port: z.infer<typeof plugPortSchema>, signal?: AbortSignal): Promise<VifRecord> {
    if (port.bindingVifType === 'binding_failed' || port.bindingVifType === 'unbound')
      throw new CloudError(
        'PortBindingFailed',
        `Port ${port.id} is not bound (vif_type ${port.bindingVifType})`,
        {
          port: port.id,
        },
      );
    if (port.bindingHostId && port.bindingHostId !== this.host)
      throw new CloudError(
        'PortBindingFailed',
        `Port ${port.id} is bound to host ${port.bindingHostId}, not ${this.host}`,
        {
          port: port.id,
        },
      );
    const { bridge, tap } = deviceNames(port.id);
    return this.file.update(
      (state) => {
        const existing = state.vifs[port.id];
        if (existing) {
          if (existing.macAddress !== port.macAddress)
            throw new CloudError(
              'VirtualInterfaceCreateException',
              `Port ${port.id} is plugged with another MAC address`,
            );
          return existing;
        }
        const clash = Object.values(state.vifs).find((v) => v.tap === tap);
        if (clash)
          throw new CloudError(
            'VirtualInterfaceCreateException',
            `Device ${tap} is already used by port ${clash.portId}`,
          );
        const record: VifRecord = {
          portId: port.id,
          macAddress: port.macAddress,
          bridge,
          tap,
          instanceUuid: port.deviceId ?? null,
          networkId: port.networkId ?? null,
          vifType: port.bindingVifType ?? 'ovs',
          pluggedAt: this.clock.now(),
        };
        state.vifs[port.id] = record;
        return record;
      },
      { signal },
    );
  }

  /** Removes the port's bridge and tap; false if it was not plugged. */
  async unplug(portId: string): Promise<boolean> {
    return this.file.update((state) => {
      if (!state.vifs[portId]) return false;
      delete state.vifs[portId];
      return true;
    });
  }

  /** Unplugs every port of an instance (as the driver's destroy does with the instance's network_info). */
  async unplugInstance(instanceUuid: string): Promise<string[]> {
    return this.file.update((state) => {
      const ports = Object.values(state.vifs)
        .filter((v) => v.instanceUuid === instanceUuid)
        .map((v) => v.portId);
      for (const portId of ports) delete state.vifs[portId];
      return ports;
    });
  }

  async list(): Promise<VifRecord[]> {
    const state = await this.file.read();
    return Object.values(state.vifs).sort(
      (a, b) => a.pluggedAt - b.pluggedAt || a.portId.localeCompare(b.portId),
    );
  }
}
