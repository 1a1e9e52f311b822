export { Placement, type PlacementOptions, type UsageMismatch } from './placement';
export type { Allocation, ClaimRequest } from './claims';
export type {
  AllocationCandidate,
  CandidateOrder,
  CandidateQuery,
  ProviderResourceUsage,
} from './candidates';
export { resourceUse, type ProviderInventory, type ResourceProvider, type ResourceUse } from './providers';
export {
  capacityOf,
  DEFAULT_ALLOCATION_RATIO,
  DEFAULT_RESERVED,
  RESOURCE_CLASSES,
  type InventoriesInput,
  type InventoryInput,
  type ResourceClass,
  type Resources,
} from './resources';
