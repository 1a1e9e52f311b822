/**
 * Bulk seeding of compute hosts for the scheduler benchmark: Nova's service + compute node rows and
 * Placement's provider + inventory rows, written with multi-row INSERTs inside a few transactions (100,000
 * hosts take seconds, where registering them one by one would take minutes). Optionally each host gets a
 * "filler" consumer whose allocations leave it nearly full; its inventory `used` is set to match, exactly as
 * claims would have left it, so placement.auditUsage() stays clean.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Nova } from '../../cloud/nova';
import type { Placement, ResourceClass } from '../../cloud/placement';
import { seededRandom } from './stats';

export interface SeededHost {
  host: string;
  nodeUuid: string;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
  cpuArch: string;
  disabled: boolean;
  up: boolean;
  failedBuilds: number;
  /** Already allocated on the host (a filler consumer), per class. */
  used?: Record<ResourceClass, number>;
}

/** Reserved memory of every seeded host (Nova's reserved_host_memory_mb default). */
export const RESERVED_MEMORY_MB = 512;
export const CPU_RATIO = 4;

/**
 * A varied fleet: four sizes, 3 % disabled, 2 % down, 5 % aarch64 (rejected by an x86_64 image), 1 % with a
 * recent build failure, so the filters and weighers have real work. Deterministic for a given seed.
 */
export function variedFleet(count: number, seed: number, prefix = 'node'): SeededHost[] {
  const rand = seededRandom(seed);
  const sizes = [
    { vcpus: 16, memoryMb: 65_536, diskGb: 500 },
    { vcpus: 32, memoryMb: 131_072, diskGb: 1_000 },
    { vcpus: 48, memoryMb: 196_608, diskGb: 1_500 },
    { vcpus: 64, memoryMb: 262_144, diskGb: 2_000 },
  ];
  const width = String(count - 1).length;
  return Array.from({ length: count }, (_, i) => {
    const size = sizes[Math.floor(rand() * sizes.length)] ?? sizes[0]!;
    const roll = rand();
    return {
      host: `${prefix}-${String(i).padStart(width, '0')}`,
      nodeUuid: randomUUID(),
      ...size,
      // Less than a full GB apart: free memory is (almost) never tied, as in a real fleet.
      memoryMb: size.memoryMb + RESERVED_MEMORY_MB + Math.floor(rand() * 1000),
      cpuArch: roll < 0.05 ? 'aarch64' : 'x86_64',
      disabled: roll >= 0.05 && roll < 0.08,
      up: !(roll >= 0.08 && roll < 0.1),
      failedBuilds: roll >= 0.1 && roll < 0.11 ? 1 : 0,
    };
  });
}

const CHUNK = 500;

function chunks<T>(items: readonly T[], size = CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Writes the hosts into Nova's and Placement's databases; returns the seconds it took. */
export async function seedHosts(
  services: { nova: Nova; placement: Placement },
  hosts: readonly SeededHost[],
  now: number,
): Promise<number> {
  const started = process.hrtime.bigint();
  const nova = services.nova.store;
  const placement = services.placement.database;
  // Random uuids land all over the B-trees; the connection's page cache would thrash on 100,000 hosts.
  // A large cache while seeding only; the connection's own size again before anything is measured (not
  // SQLite's 2 MB default: better-sqlite3 builds SQLite with 16 MB, and that is what the cloud runs with).
  const sqlite = [nova, placement].filter((store) => store.dialect === 'sqlite');
  const cacheSizes = new Map<object, number>();
  for (const store of sqlite) {
    const { rows } = await sql<{ cache_size: number }>`pragma cache_size`.execute(store.db);
    cacheSizes.set(store, Number(rows[0]?.cache_size ?? -2000));
    await sql`pragma cache_size = -262144`.execute(store.db);
  }
  // A transaction per 5,000 hosts: big enough to be fast, small enough for any server's undo log.
  for (const group of chunks(hosts, 5_000)) {
    await nova.transaction(async (trx) => {
      for (const part of chunks(group)) {
        const services = part.map((h) => ({ h, id: randomUUID() }));
        await trx
          .insertInto('services')
          .values(
            services.map(({ h, id }) => ({
              id,
              host: h.host,
              binary: 'nova-compute',
              topic: 'compute',
              report_count: 1,
              disabled: h.disabled ? 1 : 0,
              disabled_reason: h.disabled ? 'bench' : null,
              last_seen_up: h.up ? now : now - 3_600_000,
              forced_down: 0,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute();
        await trx
          .insertInto('compute_nodes')
          .values(
            services.map(({ h, id }) => ({
              uuid: h.nodeUuid,
              service_id: id,
              host: h.host,
              hypervisor_hostname: h.host,
              vcpus: h.vcpus,
              memory_mb: h.memoryMb,
              local_gb: h.diskGb,
              cpu_arch: h.cpuArch,
              cpu_info: JSON.stringify({ arch: h.cpuArch }),
              hypervisor_type: 'QEMU',
              availability_zone: 'nova',
              failed_builds: h.failedBuilds,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute();
      }
    });
    await placement.transaction(async (trx) => {
      for (const part of chunks(group)) {
        await trx
          .insertInto('resource_providers')
          .values(
            part.map((h) => ({
              uuid: h.nodeUuid,
              name: h.host,
              generation: 1,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute();
        await trx
          .insertInto('inventories')
          .values(
            part.flatMap((h) => {
              const base = { provider_uuid: h.nodeUuid, min_unit: 1, step_size: 1 };
              return [
                { ...base, resource_class: 'VCPU', total: h.vcpus, reserved: 0, max_unit: h.vcpus, allocation_ratio: CPU_RATIO, used: h.used?.VCPU ?? 0 },
                { ...base, resource_class: 'MEMORY_MB', total: h.memoryMb, reserved: RESERVED_MEMORY_MB, max_unit: h.memoryMb, allocation_ratio: 1, used: h.used?.MEMORY_MB ?? 0 },
                { ...base, resource_class: 'DISK_GB', total: h.diskGb, reserved: 0, max_unit: h.diskGb, allocation_ratio: 1, used: h.used?.DISK_GB ?? 0 },
              ]; // prettier-ignore
            }),
          )
          .execute();
        const filled = part.filter((h) => h.used);
        if (filled.length === 0) continue;
        const fillers = filled.map((h) => ({ h, consumer: randomUUID() }));
        await trx
          .insertInto('consumers')
          .values(
            fillers.map(({ consumer }) => ({
              uuid: consumer,
              project_id: 'bench-filler',
              user_id: 'bench-filler',
              generation: 1,
              created_at: now,
              updated_at: now,
            })),
          )
          .execute();
        await trx
          .insertInto('allocations')
          .values(
            fillers.flatMap(({ h, consumer }) =>
              (['VCPU', 'MEMORY_MB', 'DISK_GB'] as const)
                .filter((rc) => (h.used?.[rc] ?? 0) > 0)
                .map((rc) => ({
                  consumer_uuid: consumer,
                  provider_uuid: h.nodeUuid,
                  resource_class: rc,
                  used: h.used?.[rc] ?? 0,
                  created_at: now,
                })),
            ),
          )
          .execute();
      }
    });
  }
  for (const store of sqlite) {
    await sql.raw(`pragma cache_size = ${Math.trunc(cacheSizes.get(store) ?? -2000)}`).execute(store.db);
  }
  return Number(process.hrtime.bigint() - started) / 1e9;
}
