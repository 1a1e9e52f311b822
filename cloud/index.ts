/**
 * The controller side of the embedded cloud in one handle: every service that owns a controller database,
 * plus the scheduler over Placement and Nova's host states. Compute hosts are opened separately
 * (`openComputeHost`), since they run on their own nodes and never touch these databases.
 */
import path from 'node:path';
import { Cinder, type CinderFaults } from './cinder';
import { systemClock, type Clock } from './clock';
import { ComputeHost, type HostCapabilities, type NetworkAgentKind, type VirtDriverType } from './compute';
import type { DbConfig } from './db';
import { Glance } from './glance';
import { Keystone } from './keystone';
import { Neutron } from './neutron';
import { Nova } from './nova';
import { Placement } from './placement';
import { Scheduler } from './scheduler';

export interface CloudOptions {
  db: DbConfig;
  clock?: Clock;
  /** Keystone token lifetime in seconds (default 3600). */
  tokenTtlSeconds?: number;
  /** Hosts where Neutron fails port binding (tests of Nova's PortBindingFailed path). */
  bindingFailHosts?: string[];
  cinderFaults?: CinderFaults;
}

export interface Cloud {
  readonly keystone: Keystone;
  readonly nova: Nova;
  readonly placement: Placement;
  readonly scheduler: Scheduler;
  readonly glance: Glance;
  readonly neutron: Neutron;
  readonly cinder: Cinder;
  readonly clock: Clock;
  readonly dataDir: string;
  close(): Promise<void>;
}

export async function openCloud(options: CloudOptions): Promise<Cloud> {
  const clock = options.clock ?? systemClock;
  const { db } = options;
  const opened: Array<{ close(): Promise<void> }> = [];
  const track = <T extends { close(): Promise<void> }>(service: T): T => {
    opened.push(service);
    return service;
  };
  try {
    const keystone = track(await Keystone.open({ db, clock, tokenTtlSeconds: options.tokenTtlSeconds }));
    const nova = track(await Nova.open({ db, clock }));
    const placement = track(await Placement.open({ db, clock }));
    const glance = track(await Glance.open({ db, clock }));
    const neutron = track(await Neutron.open({ db, clock, bindingFailHosts: options.bindingFailHosts }));
    // Cinder's quota (volumes, snapshots, gigabytes) lives in Nova's quota tables beside Nova's own.
    const quota = {
      claim: (projectId: string, consumerUuid: string, amounts: { snapshots?: number; gigabytes?: number }) =>
        nova.claimQuota(projectId, consumerUuid, amounts),
      release: (consumerUuid: string) => nova.releaseQuota(consumerUuid),
    };
    const cinder = track(await Cinder.open({ db, clock, faults: options.cinderFaults, quota }));
    const scheduler = new Scheduler({ placement, hosts: nova, groups: nova, hints: nova });
    return {
      keystone,
      nova,
      placement,
      scheduler,
      glance,
      neutron,
      cinder,
      clock,
      dataDir: db.dataDir,
      async close() {
        // Cinder first: it stops background volume builds that write to its database.
        for (const service of [...opened].reverse()) await service.close();
      },
    };
  } catch (err) {
    for (const service of opened.reverse()) await service.close().catch(() => undefined);
    throw err;
  }
}

/** Where a compute host keeps its local state: `<dataDir>/hosts/<host>`. */
export function hostDirOf(dataDir: string, host: string): string {
  return path.join(dataDir, 'hosts', host);
}

export async function openComputeHost(options: {
  dataDir: string;
  host: string;
  capabilities: HostCapabilities;
  networkAgent?: NetworkAgentKind;
  clock?: Clock;
  driver?: VirtDriverType;
}): Promise<ComputeHost> {
  return ComputeHost.open({
    host: options.host,
    hostDir: hostDirOf(options.dataDir, options.host),
    capabilities: options.capabilities,
    ...(options.networkAgent ? { networkAgent: options.networkAgent } : {}),
    clock: options.clock,
    ...(options.driver ? { driver: options.driver } : {}),
  });
}
