/**
 * The virt driver interface (Nova's ComputeDriver, the part the boot and day-two operations need) and the
 * fake driver, which, like Nova's, runs no guest: it keeps domains and power states in
 * `<hostDir>/state/domains.json`, so every process working on the host sees them. The qemu driver
 * (./qemu-driver.ts) runs real guests behind the same interface.
 */
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../clock';
import { CloudError } from '../errors';
import { JsonStateFile } from './state-file';
import { POWER_STATE, type DomainInfo, type DomainSpec, type PowerState } from './types';

/** Nova's reboot types: SOFT asks the guest (ACPI), HARD resets it. */
export const REBOOT_TYPES = ['SOFT', 'HARD'] as const;
export type RebootType = (typeof REBOOT_TYPES)[number];

/** Nova's fake driver answers get_console_output with these lines. */
export const FAKE_CONSOLE_OUTPUT = 'FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE\n';

export interface VirtDriver {
  /** The libvirt domain type it runs (`fake`, `qemu`). */
  readonly type: string;
  /** The format of the instance disks it boots: `raw` sparse files (fake) or `qcow2` overlays (qemu). */
  readonly diskFormat: 'raw' | 'qcow2';
  /** Defines and starts the guest; starting an existing guest again returns it running. */
  spawn(spec: DomainSpec, signal?: AbortSignal): Promise<DomainInfo>;
  powerOff(uuid: string): Promise<DomainInfo>;
  powerOn(uuid: string): Promise<DomainInfo>;
  /** SOFT: clean shutdown and start again (HARD after a timeout); HARD: reset. */
  reboot(uuid: string, type: RebootType): Promise<DomainInfo>;
  /** Nova's pause: the guest's vCPUs stopped, its memory kept in the running process (power state PAUSED). */
  pause(uuid: string): Promise<DomainInfo>;
  /** Nova's unpause: a paused guest runs again. */
  unpause(uuid: string): Promise<DomainInfo>;
  /**
   * Nova's suspend (the libvirt driver's managed save): the guest's state saved to a file on the host and
   * its process stopped (power state SHUTDOWN); the domain stays defined.
   */
  suspend(uuid: string): Promise<DomainInfo>;
  /** Nova's resume: the guest restored from its saved state, running, the saved state removed. */
  resume(uuid: string): Promise<DomainInfo>;
  /** The guest's serial console as the driver keeps it (the last 100 KiB at most, as Nova's libvirt driver). */
  getConsoleOutput(uuid: string): Promise<string>;
  /** Nova's init_host: finds the host's guests again; returns the uuids of stray guests it removed. */
  initHost(): Promise<string[]>;
  /** Stops and undefines the guest; false when there was none. */
  destroy(uuid: string): Promise<boolean>;
  getInfo(uuid: string): Promise<DomainInfo | undefined>;
  listDomains(): Promise<DomainInfo[]>;
}

const powerStateSchema = z.literal(Object.values(POWER_STATE));
const domainSchema = z.object({
  uuid: z.string(),
  name: z.string(),
  powerState: powerStateSchema,
  vcpus: z.number(),
  memoryMb: z.number(),
  driver: z.string(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
const domainsStateSchema = z.object({ domains: z.record(z.string(), domainSchema) });
type DomainsState = z.infer<typeof domainsStateSchema>;

export class FakeDriver implements VirtDriver {
  readonly type = 'fake';
  readonly diskFormat = 'raw';
  private readonly file: JsonStateFile<DomainsState>;

  constructor(
    hostDir: string,
    private readonly clock: Clock,
  ) {
    this.file = new JsonStateFile(path.join(hostDir, 'state', 'domains.json'), domainsStateSchema, () => ({
      domains: {},
    }));
  }

  async spawn(spec: DomainSpec, signal?: AbortSignal): Promise<DomainInfo> {
    return this.file.update(
      (state) => {
        const now = this.clock.now();
        const existing = state.domains[spec.uuid];
        if (existing) {
          if (existing.powerState !== POWER_STATE.RUNNING)
            Object.assign(existing, { powerState: POWER_STATE.RUNNING, updatedAt: now });
          return existing;
        }
        const domain: DomainInfo = {
          uuid: spec.uuid,
          name: spec.name,
          powerState: POWER_STATE.RUNNING,
          vcpus: spec.vcpus,
          memoryMb: spec.memoryMb,
          driver: this.type,
          createdAt: now,
          updatedAt: now,
        };
        state.domains[spec.uuid] = domain;
        return domain;
      },
      { signal },
    );
  }

  powerOff(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.SHUTDOWN);
  }

  powerOn(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.RUNNING);
  }

  /** Either kind ends with the domain running (the fake guest has nothing to shut down). */
  async reboot(uuid: string, _type: RebootType): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.RUNNING);
  }

  pause(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.PAUSED);
  }

  unpause(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.RUNNING);
  }

  /** As the libvirt driver's managed save leaves it: the domain defined and shut off. */
  suspend(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.SHUTDOWN);
  }

  resume(uuid: string): Promise<DomainInfo> {
    return this.setPower(uuid, POWER_STATE.RUNNING);
  }

  async getConsoleOutput(uuid: string): Promise<string> {
    if (!(await this.getInfo(uuid)))
      throw new CloudError('NotFound', `No domain for instance ${uuid} on this host`, { instance: uuid });
    return FAKE_CONSOLE_OUTPUT;
  }

  /** The fake domains are all in one state file: nothing to find again, nothing stray. */
  async initHost(): Promise<string[]> {
    return [];
  }

  async destroy(uuid: string): Promise<boolean> {
    return this.file.update((state) => {
      if (!state.domains[uuid]) return false;
      delete state.domains[uuid];
      return true;
    });
  }

  async getInfo(uuid: string): Promise<DomainInfo | undefined> {
    return (await this.file.read()).domains[uuid];
  }

  async listDomains(): Promise<DomainInfo[]> {
    return Object.values((await this.file.read()).domains).sort(
      (a, b) => a.createdAt - b.createdAt || a.uuid.localeCompare(b.uuid),
    );
  }

  private async setPower(uuid: string, powerState: PowerState): Promise<DomainInfo> {
    return this.file.update((state) => {
      const domain = state.domains[uuid];
      if (!domain)
        throw new CloudError('NotFound', `No domain for instance ${uuid} on this host`, { instance: uuid });
      if (domain.powerState !== powerState)
        Object.assign(domain, { powerState, updatedAt: this.clock.now() });
      return domain;
    });
  }
}
