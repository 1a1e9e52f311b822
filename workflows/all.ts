/**
 * Everything a `controller` worker runs (its workflowsPath): the boot workflows, the compute services'
 * conversation with the conductor, and the read-only operator workflows behind the client (and the console
 * output, which the OpenStack API's os-getConsoleOutput also starts).
 */
export * from './index';
export { computeService } from './compute-service';
export { getConsoleOutput } from './console-output';
export { auditCloud, listHypervisors, listServers, showServer } from './operator';
