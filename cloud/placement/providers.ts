/** Resource providers and their inventories: reads and the inventory replacement rule. */
import type { Kysely } from 'kysely';
import { CloudError } from '../errors';
import { capacityOf, RESOURCE_CLASSES, type Inventory, type ResourceClass } from './resources';
import type { InventoriesTable, PlacementDb } from './schema';

export interface ProviderInventory extends Inventory {
  capacity: number;
  used: number;
}

export interface ResourceProvider {
  uuid: string;
  name: string;
  generation: number;
  inventories: Partial<Record<ResourceClass, ProviderInventory>>;
}

/** A resource class's total, use and room on a provider, as `hypervisor show` reports them. */
export interface ResourceUse {
  total: number;
  used: number;
  free: number;
}

/**
 * The use of `rc` on `provider`: room is measured against the capacity (allocation ratio and reserved
 * applied), never below zero; a host with no provider yet (or no inventory of `rc`) uses nothing of the
 * `reported` total its compute service registered.
 */
export function resourceUse(
  provider: ResourceProvider | undefined,
  rc: ResourceClass,
  reported: number,
): ResourceUse {
  const inv = provider?.inventories[rc];
  if (!inv) return { total: reported, used: 0, free: reported };
  return { total: reported, used: inv.used, free: Math.max(0, inv.capacity - inv.used) };
}

type InventoryRow = Omit<InventoriesTable, 'free'>;

export function isResourceClass(rc: string): rc is ResourceClass {
  return (RESOURCE_CLASSES as readonly string[]).includes(rc);
}

function inventoryOfRow(row: InventoryRow): ProviderInventory {
  const inv: Inventory = {
    total: Number(row.total),
    reserved: Number(row.reserved),
    minUnit: Number(row.min_unit),
    maxUnit: Number(row.max_unit),
    stepSize: Number(row.step_size),
    allocationRatio: Number(row.allocation_ratio),
  };
  return { ...inv, capacity: capacityOf(inv), used: Number(row.used) };
}

const INVENTORY_COLUMNS = [
  'provider_uuid',
  'resource_class',
  'total',
  'reserved',
  'min_unit',
  'max_unit',
  'step_size',
  'allocation_ratio',
  'used',
] as const;

export async function readProviders(
  db: Kysely<PlacementDb>,
  uuids?: readonly string[],
): Promise<ResourceProvider[]> {
  if (uuids && uuids.length === 0) return [];
  let providers = db.selectFrom('resource_providers').select(['uuid', 'name', 'generation']).orderBy('name');
  let inventories = db.selectFrom('inventories').select(INVENTORY_COLUMNS);
  if (uuids) {
    providers = providers.where('uuid', 'in', uuids);
    inventories = inventories.where('provider_uuid', 'in', uuids);
  }
  const byUuid = new Map<string, ResourceProvider>();
  for (const p of await providers.execute()) {
    byUuid.set(p.uuid, { uuid: p.uuid, name: p.name, generation: Number(p.generation), inventories: {} });
  }
  for (const row of await inventories.execute()) {
    const provider = byUuid.get(row.provider_uuid);
    if (provider && isResourceClass(row.resource_class)) {
      provider.inventories[row.resource_class] = inventoryOfRow(row);
    }
  }
  return [...byUuid.values()];
}

function sameInventory(row: InventoryRow, inv: Inventory): boolean {
  return (
    Number(row.total) === inv.total &&
    Number(row.reserved) === inv.reserved &&
    Number(row.min_unit) === inv.minUnit &&
    Number(row.max_unit) === inv.maxUnit &&
    Number(row.step_size) === inv.stepSize &&
    Number(row.allocation_ratio) === inv.allocationRatio
  );
}

/**
 * Replaces a provider's inventories with `desired` inside the caller's transaction (the provider row is
 * already locked). As in Placement, a class still in use cannot be removed (InventoryInUse), while a
 * capacity below current usage is accepted: existing allocations stay, new claims find no room.
 * Returns whether anything changed (the caller then bumps the provider generation).
 */
export async function replaceInventories(
  trx: Kysely<PlacementDb>,
  providerUuid: string,
  desired: Partial<Record<ResourceClass, Inventory>>,
): Promise<boolean> {
  const current = await trx
    .selectFrom('inventories')
    .select(INVENTORY_COLUMNS)
    .where('provider_uuid', '=', providerUuid)
    .execute();
  let changed = false;
  for (const row of current) {
    if (isResourceClass(row.resource_class) && desired[row.resource_class]) continue;
    if (Number(row.used) > 0) {
      throw new CloudError(
        'Conflict',
        `Inventory of ${row.resource_class} on resource provider ${providerUuid} is in use and cannot be removed`,
        { reason: 'InventoryInUse', providerUuid, resourceClass: row.resource_class },
      );
    }
    await trx
      .deleteFrom('inventories')
      .where('provider_uuid', '=', providerUuid)
      .where('resource_class', '=', row.resource_class)
      .execute();
    changed = true;
  }
  for (const rc of RESOURCE_CLASSES) {
    const inv = desired[rc];
    if (!inv) continue;
    const values = {
      total: inv.total,
      reserved: inv.reserved,
      min_unit: inv.minUnit,
      max_unit: inv.maxUnit,
      step_size: inv.stepSize,
      allocation_ratio: inv.allocationRatio,
    };
    const row = current.find((r) => r.resource_class === rc);
    if (row && sameInventory(row, inv)) continue;
    if (row) {
      await trx
        .updateTable('inventories')
        .set(values)
        .where('provider_uuid', '=', providerUuid)
        .where('resource_class', '=', rc)
        .execute();
    } else {
      await trx
        .insertInto('inventories')
        .values({ provider_uuid: providerUuid, resource_class: rc, used: 0, ...values })
        .execute();
    }
    changed = true;
  }
  return changed;
}
