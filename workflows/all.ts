/**
 * Everything a `controller` worker runs (its workflowsPath): the boot workflows, the compute services'
 * conversation with the conductor, and the read-only operator workflows behind the client.
 */
export * from './index';
export { computeService } from './compute-service';
export { auditCloud, listHypervisors, listServers, showServer } from './operator';
export { reconcileInstances } from './reconciler';
