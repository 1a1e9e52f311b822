/** The controller worker's workflows during a benchmark: the real ones and the skeleton, in one bundle. */
export * from '../../workflows';
export { skeletonBoot } from '../../workflows/skeleton';
