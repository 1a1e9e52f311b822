/** Standard resource classes, inventory defaults and the capacity rule of OpenStack Placement. */
import { z } from 'zod';

export const RESOURCE_CLASSES = ['VCPU', 'MEMORY_MB', 'DISK_GB'] as const;
export type ResourceClass = (typeof RESOURCE_CLASSES)[number];

/** Amounts per resource class; a class left out (or 0) is not requested. */
export type Resources = Partial<Record<ResourceClass, number>>;

/** Nova's defaults: cpu_allocation_ratio 4.0, ram 1.0, disk 1.0; reserved_host_memory_mb 512. */
export const DEFAULT_ALLOCATION_RATIO: Record<ResourceClass, number> = {
  VCPU: 4.0,
  MEMORY_MB: 1.0,
  DISK_GB: 1.0,
};
export const DEFAULT_RESERVED: Record<ResourceClass, number> = { VCPU: 0, MEMORY_MB: 512, DISK_GB: 0 };

export interface Inventory {
  total: number;
  reserved: number;
  minUnit: number;
  maxUnit: number;
  stepSize: number;
  allocationRatio: number;
}

/** Placement's rule: what may be allocated is (total − reserved) × allocation_ratio. */
export function capacityOf(inv: Pick<Inventory, 'total' | 'reserved' | 'allocationRatio'>): number {
  return (inv.total - inv.reserved) * inv.allocationRatio;
}

/** The largest integer OpenStack's APIs accept for an amount (a signed 32-bit int). */
export const MAX_AMOUNT = 2 ** 31 - 1;
const amount = z.number().int().min(0).max(MAX_AMOUNT);

export const inventoryInputSchema = z
  .strictObject({
    total: amount,
    reserved: amount.optional(),
    minUnit: amount.min(1).optional(),
    maxUnit: amount.min(1).optional(),
    stepSize: amount.min(1).optional(),
    allocationRatio: z.number().positive().max(65535).optional(),
  })
  .refine((inv) => inv.reserved === undefined || inv.reserved <= inv.total, 'reserved must not exceed total')
  .refine(
    (inv) => inv.minUnit === undefined || inv.maxUnit === undefined || inv.minUnit <= inv.maxUnit,
    'minUnit must not exceed maxUnit',
  );
export type InventoryInput = z.infer<typeof inventoryInputSchema>;

export const inventoriesInputSchema = z.strictObject({
  VCPU: inventoryInputSchema.optional(),
  MEMORY_MB: inventoryInputSchema.optional(),
  DISK_GB: inventoryInputSchema.optional(),
});
export type InventoriesInput = z.infer<typeof inventoriesInputSchema>;

export const resourcesSchema = z
  .strictObject({ VCPU: amount.optional(), MEMORY_MB: amount.optional(), DISK_GB: amount.optional() })
  .refine((r) => RESOURCE_CLASSES.some((rc) => (r[rc] ?? 0) > 0), 'at least one resource must be requested');

/** Fills Placement's defaults in: max_unit defaults to total (as the compute driver reports it). */
export function inventoryWithDefaults(rc: ResourceClass, input: InventoryInput): Inventory {
  // The default reservation never exceeds a tiny host's total (an explicit one is validated instead).
  const reserved = input.reserved ?? Math.min(DEFAULT_RESERVED[rc], input.total);
  return {
    total: input.total,
    reserved,
    minUnit: input.minUnit ?? 1,
    maxUnit: input.maxUnit ?? Math.max(1, input.total),
    stepSize: input.stepSize ?? 1,
    allocationRatio: input.allocationRatio ?? DEFAULT_ALLOCATION_RATIO[rc],
  };
}

/** The requested classes with a positive amount, in a fixed order. */
export function requestedClasses(resources: Resources): Array<[ResourceClass, number]> {
  const out: Array<[ResourceClass, number]> = [];
  for (const rc of RESOURCE_CLASSES) {
    const n = resources[rc] ?? 0;
    if (n > 0) out.push([rc, n]);
  }
  return out;
}
