/**
 * Short read-only workflows behind the client's `server list/show`, `hypervisor list` and `audit`: the
 * client never opens a cloud database. As in OpenStack, nova-api answers from its own records and asks
 * neutron (network queue) for addresses and cinder (controller) for volumes; every step checks the token
 * and the policy. Credentials travel in the (encrypted) input and are exchanged for a token at once.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { OperatorControllerActivities, OperatorNetworkActivities } from '../activities/operator';
import { CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';
import type {
  AuditRequest,
  AuthOnlyRequest,
  HypervisorView,
  LeakFinding,
  ListServersRequest,
  ServerRecord,
  ServerView,
  ShowServerRequest,
} from './operator-types';
import { call, controller } from './proxies';

/** Reads are cheap and idempotent: a short timeout and a few quick retries, then the client hears why. */
const readRetry = {
  initialInterval: '200 ms',
  backoffCoefficient: 2,
  maximumInterval: '2 seconds',
  maximumAttempts: 4,
};
/** Each proxy is typed with exactly the activities it serves, so each has one policy. */
const novaApi = proxyActivities<
  Pick<OperatorControllerActivities, 'findServers' | 'serverVolumes' | 'listHypervisors'>
>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '20 seconds',
  retry: readRetry,
});
/** The leak audit reads every database and host: minutes, not seconds. */
const audit = proxyActivities<Pick<OperatorControllerActivities, 'runLeakAudit'>>({
  taskQueue: CONTROLLER_QUEUE,
  startToCloseTimeout: '2 minutes',
  retry: readRetry,
});
const neutronApi = proxyActivities<Pick<OperatorNetworkActivities, 'serverAddresses'>>({
  taskQueue: NETWORK_QUEUE,
  startToCloseTimeout: '20 seconds',
  retry: readRetry,
});

async function withDetails(token: string, records: ServerRecord[]): Promise<ServerView[]> {
  if (records.length === 0) return [];
  const instanceUuids = records.map((r) => r.id);
  const [addresses, volumes] = await Promise.all([
    call(neutronApi.serverAddresses, 'neutron: server addresses', { token, instanceUuids }),
    call(novaApi.serverVolumes, 'cinder: attached volumes', { token, instanceUuids }),
  ]);
  return records.map((r) => ({ ...r, addresses: addresses[r.id] ?? {}, volumes: volumes[r.id] ?? [] }));
}

/** `openstack server list [--all-projects]`. */
export async function listServers(request: ListServersRequest): Promise<ServerView[]> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  const records = await call(novaApi.findServers, 'nova-api: list servers', {
    token: session.token,
    filter: { allProjects: request.allProjects === true },
  });
  return withDetails(session.token, records);
}

/** `openstack server show NAME_OR_ID`. */
export async function showServer(request: ShowServerRequest): Promise<ServerView> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  const records = await call(novaApi.findServers, `nova-api: show server ${request.server}`, {
    token: session.token,
    filter: { nameOrId: request.server, allProjects: request.allProjects === true },
  });
  const [server] = await withDetails(session.token, records);
  return server as ServerView;
}

/** `openstack hypervisor list --long` (admin). */
export async function listHypervisors(request: AuthOnlyRequest): Promise<HypervisorView[]> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  return call(novaApi.listHypervisors, 'nova-api: list hypervisors', { token: session.token });
}

/** bootflow's leak audit (admin): an empty list means nothing leaked. */
export async function auditCloud(request: AuditRequest): Promise<LeakFinding[]> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  return call(audit.runLeakAudit, 'bootflow: leak audit', {
    token: session.token,
    buildsInFlight: request.buildsInFlight === true,
  });
}
