/**
 * nova-compute service records (services) and their compute nodes (compute_nodes). A compute host
 * registers itself when its worker starts and then heartbeats; like Nova's DB servicegroup driver, a
 * service is up when its last heartbeat is within service_down_time (60 s) of the clock and it is not
 * forced down. The scheduler reads all of it through listHostStates().
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { CloudError } from '../errors';
import type { HostState, HostStateFilter, HostStateSource } from '../scheduler/host-state';
import { parseRequest } from '../validation';
import { isUniqueViolation, type NovaContext } from './db-util';
import type { ComputeNodesTable, NovaDb, ServicesTable } from './schema';
import { hostSchema, MAX_INT } from './schemas';

export const COMPUTE_BINARY = 'nova-compute';
const COMPUTE_TOPIC = 'compute';
/** Nova's service_down_time default. */
export const DEFAULT_SERVICE_DOWN_TIME_MS = 60_000;
/** Nova's default_availability_zone. */
export const DEFAULT_AVAILABILITY_ZONE = 'nova';

// The scheduler owns the HostStateSource contract; Nova's service records implement it.
export type { HostState, HostStateFilter, HostStateSource };

const filterSchema = z.strictObject({
  nodeUuids: z.array(z.string().max(36)).optional(),
  hosts: z.array(z.string().max(255)).optional(),
});

// IN lists are sent in chunks so 10,000 candidates stay under every database's parameter limit.
const IN_CHUNK = 500;

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += IN_CHUNK) out.push(items.slice(i, i + IN_CHUNK));
  return out;
}

export interface ComputeHost extends HostState {
  serviceId: string;
  disabledReason: string | null;
  forcedDown: boolean;
  lastHeartbeatAt: number | null;
  reportCount: number;
  vcpus: number;
  memoryMb: number;
  diskGb: number;
}

const registerSchema = z.strictObject({
  host: hostSchema,
  availabilityZone: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[^:\p{Cc}]+$/u, 'must not contain ":" or control characters')
    .optional(),
  vcpus: z.number().int().min(1).max(65536),
  memoryMb: z.number().int().min(1).max(MAX_INT),
  diskGb: z.number().int().min(1).max(MAX_INT),
  cpuArch: z
    .string()
    .min(1)
    .max(32)
    .regex(/^[a-z0-9_]+$/, 'must be an architecture name such as x86_64 or aarch64'),
  hypervisorType: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[A-Za-z0-9_.-]+$/, 'must be a hypervisor type such as QEMU or fake'),
});
export type RegisterComputeHostInput = z.input<typeof registerSchema>;

/** Each nova-compute service with its compute node: what both host queries below read from. */
function computeHostsJoin(db: Kysely<NovaDb>) {
  return db
    .selectFrom('services as s')
    .innerJoin('compute_nodes as n', 'n.service_id', 's.id')
    .where('s.binary', '=', COMPUTE_BINARY);
}

function hostRows(db: Kysely<NovaDb>) {
  return computeHostsJoin(db).select([
    's.id as serviceId',
    's.host as host',
    's.disabled as disabled',
    's.disabled_reason as disabledReason',
    's.forced_down as forcedDown',
    's.last_seen_up as lastSeenUp',
    's.report_count as reportCount',
    'n.uuid as nodeUuid',
    'n.availability_zone as availabilityZone',
    'n.cpu_arch as cpuArch',
    'n.hypervisor_type as hypervisorType',
    'n.failed_builds as failedBuilds',
    'n.vcpus as vcpus',
    'n.memory_mb as memoryMb',
    'n.local_gb as diskGb',
  ]);
}

type HostJoinRow = Awaited<ReturnType<ReturnType<typeof hostRows>['executeTakeFirstOrThrow']>>;

/** What listHostStates reads: the scheduler's columns only. */
function stateRows(db: Kysely<NovaDb>) {
  return computeHostsJoin(db).select([
    's.host as host',
    's.disabled as disabled',
    's.forced_down as forcedDown',
    's.last_seen_up as lastSeenUp',
    'n.uuid as nodeUuid',
    'n.availability_zone as availabilityZone',
    'n.cpu_arch as cpuArch',
    'n.hypervisor_type as hypervisorType',
    'n.failed_builds as failedBuilds',
  ]);
}

interface InListPart {
  column: 'n.uuid' | 's.host';
  values: string[];
}

/** Rows of the hosts a filter names (node uuids and host names both: the uuids' rows with those names). */
async function rowsMatching<R extends { host: string }>(
  filter: { nodeUuids?: string[]; hosts?: string[] },
  select: (part?: InListPart) => Promise<R[]>,
): Promise<R[]> {
  if (filter.nodeUuids) {
    const wanted = filter.hosts ? new Set(filter.hosts) : undefined;
    const rows: R[] = [];
    for (const values of chunks(filter.nodeUuids)) rows.push(...(await select({ column: 'n.uuid', values })));
    return wanted ? rows.filter((r) => wanted.has(r.host)) : rows;
  }
  if (filter.hosts) {
    const rows: R[] = [];
    for (const values of chunks(filter.hosts)) rows.push(...(await select({ column: 's.host', values })));
    return rows;
  }
  return select();
}

function byHost(a: { host: string }, b: { host: string }): number {
  return a.host < b.host ? -1 : a.host > b.host ? 1 : 0;
}

interface HostRow {
  service: ServicesTable;
  node: ComputeNodesTable;
}

export class ComputeServices implements HostStateSource {
  constructor(
    private readonly ctx: NovaContext,
    private readonly serviceDownTimeMs: number = DEFAULT_SERVICE_DOWN_TIME_MS,
  ) {}

  /**
   * The service record and compute node of a host, created on first start and updated with the host's
   * current resources on every later start; the node uuid never changes (it is the placement provider).
   * Registering counts as a heartbeat.
   */
  async registerComputeHost(input: unknown): Promise<ComputeHost> {
    const req = parseRequest(registerSchema, input, 'compute host');
    const register = () =>
      this.ctx.store.transaction(async (trx) => {
        const now = this.ctx.clock.now();
        const found = await this.lockHost(trx, req.host);
        const nodeValues = {
          vcpus: req.vcpus,
          memory_mb: req.memoryMb,
          local_gb: req.diskGb,
          cpu_arch: req.cpuArch,
          cpu_info: JSON.stringify({ arch: req.cpuArch }),
          hypervisor_type: req.hypervisorType,
          availability_zone: req.availabilityZone ?? DEFAULT_AVAILABILITY_ZONE,
          updated_at: now,
        };
        if (found) {
          await trx
            .updateTable('services')
            .set((eb) => ({ last_seen_up: now, report_count: eb('report_count', '+', 1), updated_at: now }))
            .where('id', '=', found.service.id)
            .execute();
          await trx
            .updateTable('compute_nodes')
            .set(nodeValues)
            .where('uuid', '=', found.node.uuid)
            .execute();
        } else {
          const serviceId = randomUUID();
          await trx
            .insertInto('services')
            .values({
              id: serviceId,
              host: req.host,
              binary: COMPUTE_BINARY,
              topic: COMPUTE_TOPIC,
              report_count: 1,
              disabled: 0,
              disabled_reason: null,
              last_seen_up: now,
              forced_down: 0,
              created_at: now,
              updated_at: now,
            })
            .execute();
          await trx
            .insertInto('compute_nodes')
            .values({
              uuid: randomUUID(),
              service_id: serviceId,
              host: req.host,
              hypervisor_hostname: req.host,
              failed_builds: 0,
              created_at: now,
              ...nodeValues,
            })
            .execute();
        }
        return this.mustFind(trx, req.host);
      });
    try {
      return await register();
    } catch (err) {
      // The same host registered twice at once (two worker processes): the second run finds the first.
      if (!isUniqueViolation(err)) throw err;
      return register();
    }
  }

  /** ServiceGroup report_state: bumps report_count and last_seen_up to the clock's now. */
  async heartbeat(hostIn: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    return this.ctx.store.transaction(async (trx) => {
      const now = this.ctx.clock.now();
      const res = await trx
        .updateTable('services')
        .set((eb) => ({ last_seen_up: now, report_count: eb('report_count', '+', 1), updated_at: now }))
        .where('host', '=', host)
        .where('binary', '=', COMPUTE_BINARY)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) === 0) throw notFound(host);
      return this.mustFind(trx, host);
    });
  }

  /** `openstack compute service set --disable --disable-reason`; enabling clears the reason. */
  async setHostDisabled(hostIn: unknown, disabledIn: unknown, reasonIn?: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    const disabled = parseRequest(z.boolean(), disabledIn, 'disabled');
    const reason = parseRequest(z.string().min(1).max(255).optional(), reasonIn, 'disabled reason');
    return this.updateService(host, {
      disabled: disabled ? 1 : 0,
      disabled_reason: disabled ? (reason ?? null) : null,
    });
  }

  /** `openstack compute service set --down`: the host counts as down whatever its heartbeats say. */
  async setHostForcedDown(hostIn: unknown, forcedDownIn: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    const forcedDown = parseRequest(z.boolean(), forcedDownIn, 'forced down');
    return this.updateService(host, { forced_down: forcedDown ? 1 : 0 });
  }

  /** A build failed on the host: input of the scheduler's BuildFailureWeigher. */
  async recordBuildFailure(hostIn: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    return this.updateNode(host, 'increment');
  }

  /** A build succeeded: Nova resets the consecutive failure count. */
  async recordBuildSuccess(hostIn: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    return this.updateNode(host, 'reset');
  }

  async getComputeHost(hostIn: unknown): Promise<ComputeHost> {
    const host = parseRequest(hostSchema, hostIn, 'host');
    return this.mustFind(this.ctx.store.db, host);
  }

  async listComputeHosts(filterIn: unknown = {}): Promise<ComputeHost[]> {
    const filter = parseRequest(filterSchema, filterIn, 'host filter');
    const db = this.ctx.store.db;
    const rows = await rowsMatching(filter, (part) =>
      (part ? hostRows(db).where(part.column, 'in', part.values) : hostRows(db)).execute(),
    );
    const now = this.ctx.clock.now();
    return rows.map((r) => this.toHost(r, now)).sort(byHost);
  }

  /**
   * HostStateSource: one indexed join (per 500 names of a filter), never a query per host. Only the columns
   * a host state needs: on the scheduler's path, reading the page's rows is most of the query's cost.
   */
  async listHostStates(filterIn: HostStateFilter = {}): Promise<HostState[]> {
    const filter = parseRequest(filterSchema, filterIn, 'host filter');
    const db = this.ctx.store.db;
    const rows = await rowsMatching(filter, (part) =>
      (part ? stateRows(db).where(part.column, 'in', part.values) : stateRows(db)).execute(),
    );
    const now = this.ctx.clock.now();
    return rows
      .map((r): HostState => ({
        host: r.host,
        nodeUuid: r.nodeUuid,
        up: this.isUp(Number(r.forcedDown) === 1, r.lastSeenUp === null ? null : Number(r.lastSeenUp), now),
        disabled: Number(r.disabled) === 1,
        availabilityZone: r.availabilityZone,
        cpuArch: r.cpuArch,
        hypervisorType: r.hypervisorType,
        failedBuilds: Number(r.failedBuilds),
      }))
      .sort(byHost);
  }

  private isUp(forcedDown: boolean, lastSeenUp: number | null, now: number): boolean {
    // Nova compares abs(elapsed) so a heartbeat from a clock slightly ahead still counts.
    return !forcedDown && lastSeenUp !== null && Math.abs(now - lastSeenUp) <= this.serviceDownTimeMs;
  }

  private toHost(r: HostJoinRow, now: number): ComputeHost {
    const lastSeenUp = r.lastSeenUp === null ? null : Number(r.lastSeenUp);
    const forcedDown = Number(r.forcedDown) === 1;
    const up = this.isUp(forcedDown, lastSeenUp, now);
    const host: ComputeHost = {
      host: r.host,
      nodeUuid: r.nodeUuid,
      up,
      disabled: Number(r.disabled) === 1,
      availabilityZone: r.availabilityZone,
      cpuArch: r.cpuArch,
      hypervisorType: r.hypervisorType,
      failedBuilds: Number(r.failedBuilds),
      serviceId: r.serviceId,
      disabledReason: r.disabledReason,
      forcedDown,
      lastHeartbeatAt: lastSeenUp,
      reportCount: Number(r.reportCount),
      vcpus: Number(r.vcpus),
      memoryMb: Number(r.memoryMb),
      diskGb: Number(r.diskGb),
    };
    return host;
  }

  private async mustFind(db: Kysely<NovaDb>, host: string): Promise<ComputeHost> {
    const row = await hostRows(db).where('s.host', '=', host).executeTakeFirst();
    if (!row) throw notFound(host);
    return this.toHost(row, this.ctx.clock.now());
  }

  private async lockHost(trx: Kysely<NovaDb>, host: string): Promise<HostRow | undefined> {
    const service = await this.ctx.store
      .forUpdate(
        trx.selectFrom('services').selectAll().where('host', '=', host).where('binary', '=', COMPUTE_BINARY),
      )
      .executeTakeFirst();
    if (!service) return undefined;
    const node = await trx
      .selectFrom('compute_nodes')
      .selectAll()
      .where('service_id', '=', service.id)
      .executeTakeFirst();
    if (!node) throw new CloudError('ServiceUnavailable', `Service of host ${host} has no compute node`);
    return { service, node };
  }

  private async updateService(
    host: string,
    set: Partial<Pick<ServicesTable, 'disabled' | 'disabled_reason' | 'forced_down'>>,
  ): Promise<ComputeHost> {
    return this.ctx.store.transaction(async (trx) => {
      const found = await this.lockHost(trx, host);
      if (!found) throw notFound(host);
      await trx
        .updateTable('services')
        .set({ ...set, updated_at: this.ctx.clock.now() })
        .where('id', '=', found.service.id)
        .execute();
      return this.mustFind(trx, host);
    });
  }

  private async updateNode(host: string, change: 'increment' | 'reset'): Promise<ComputeHost> {
    return this.ctx.store.transaction(async (trx) => {
      const found = await this.lockHost(trx, host);
      if (!found) throw notFound(host);
      await trx
        .updateTable('compute_nodes')
        .set((eb) => ({
          failed_builds: change === 'increment' ? eb('failed_builds', '+', 1) : 0,
          updated_at: this.ctx.clock.now(),
        }))
        .where('uuid', '=', found.node.uuid)
        .execute();
      return this.mustFind(trx, host);
    });
  }
}

function notFound(host: string): CloudError {
  return new CloudError('ComputeHostNotFound', `Compute host ${host} could not be found.`, { host });
}
