export {
  NO_VALID_HOST_MESSAGE,
  Scheduler,
  type Destination,
  type SchedulerOptions,
  type Selection,
} from './scheduler';
export {
  StaticHostStateSource,
  type HostState,
  type HostStateFilter,
  type HostStateSource,
} from './host-state';
export {
  DEFAULT_FILTERS,
  filterHosts,
  type CandidateHost,
  type FilterResult,
  type FilterSpec,
  type HostFilter,
} from './filters';
export {
  DEFAULT_WEIGHT_MULTIPLIERS,
  defaultWeighers,
  normalize,
  weighHosts,
  type HostWeigher,
  type WeighedHost,
  type WeightMultipliers,
} from './weighers';
export { resourcesFromFlavor, type SchedulerFlavor, type SelectDestinationsRequest } from './request';
export {
  type SchedulerHintSource,
  type SchedulingGroupInfo,
  type SchedulingHints,
  type ServerGroupSource,
} from './server-group';
