/**
 * The skeleton boot's activities (benchmarks only): one per worker role, each doing nothing but echo the
 * step it stands for. They run on the same task queues as the real ones, so the skeleton workflow measures
 * what Temporal itself costs for the boot's shape: scheduling, dispatch, completion and history.
 */
export interface SkeletonStep {
  step: string;
  host?: string;
}

export function createSkeletonActivities() {
  return {
    /** Stands for a controller activity (keystone, nova-api, conductor, scheduler). */
    async skeletonController(input: SkeletonStep): Promise<SkeletonStep> {
      return input;
    },
    /** Stands for a neutron-server activity. */
    async skeletonNetwork(input: SkeletonStep): Promise<SkeletonStep> {
      return input;
    },
    /** Stands for a nova-compute activity on `compute@<host>`. */
    async skeletonCompute(input: SkeletonStep): Promise<SkeletonStep> {
      return input;
    },
  };
}

export type SkeletonActivities = ReturnType<typeof createSkeletonActivities>;
