/** Row types of the placement database (see migrations.ts for constraints and indexes). */
import type { GeneratedAlways } from 'kysely';

export interface ResourceProvidersTable {
  uuid: string;
  name: string;
  /** Bumped by every change to the provider's inventory or allocations: the compare-and-swap token. */
  generation: number;
  created_at: number;
  updated_at: number;
}

export interface InventoriesTable {
  provider_uuid: string;
  resource_class: string;
  total: number;
  reserved: number;
  min_unit: number;
  max_unit: number;
  step_size: number;
  allocation_ratio: number;
  /** Sum of the allocations of this class on this provider, written in the same transaction as they are. */
  used: number;
  /** (total − reserved) × allocation_ratio − used, computed by the database and indexed. */
  free: GeneratedAlways<number>;
}

export interface ConsumersTable {
  uuid: string;
  project_id: string;
  user_id: string;
  /** Bumped by every change to the consumer's allocations. */
  generation: number;
  created_at: number;
  updated_at: number;
}

export interface AllocationsTable {
  consumer_uuid: string;
  provider_uuid: string;
  resource_class: string;
  used: number;
  created_at: number;
}

export interface PlacementDb {
  resource_providers: ResourceProvidersTable;
  inventories: InventoriesTable;
  consumers: ConsumersTable;
  allocations: AllocationsTable;
}
