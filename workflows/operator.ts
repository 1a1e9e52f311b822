/**
 * Short read-only workflows behind the client's `server list/show`, `hypervisor list` and `audit`: the
 * client never opens a cloud database. As in OpenStack, nova-api answers from its own records and asks
 * neutron (network queue) for addresses and cinder (controller) for volumes; every step checks the token
 * and the policy. Credentials travel in the (encrypted) input and are exchanged for a token at once.
 */
import { ActivityFailure, patched, proxyActivities, TimeoutFailure } from '@temporalio/workflow';
import type { ComputeActivities } from '../activities';
import type { OperatorControllerActivities, OperatorNetworkActivities } from '../activities/operator';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from './names';
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
const audit = proxyActivities<Pick<OperatorControllerActivities, 'runLeakAudit' | 'auditController'>>({
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

/** A compute host that has not picked up its part of the audit by then is reported unreachable. */
const HOST_AUDIT_PICKUP_MS = 30_000;

/** One host's part of the audit, on its own queue; a host that does not answer is unreachable, not clean. */
async function auditOneHost(
  host: string,
  liveInstances: string[],
  dhcpNetworks: string[] | undefined,
  pickupMs: number,
): Promise<LeakFinding[]> {
  const nova = proxyActivities<Pick<ComputeActivities, 'auditHost'>>({
    taskQueue: computeQueue(host),
    scheduleToStartTimeout: pickupMs,
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '20 seconds',
    retry: readRetry,
  });
  try {
    // The DHCP networks ride along as a second argument (plans made before them have none): same command.
    return await nova.auditHost.executeWithOptions(
      { summary: `nova-compute: audit ${host}` },
      dhcpNetworks ? [liveInstances, dhcpNetworks] : [liveInstances],
    );
  } catch (err) {
    const cause = err instanceof ActivityFailure ? err.cause : err;
    const why =
      cause instanceof TimeoutFailure
        ? `no worker picked it up within ${Math.round(pickupMs / 1000)} s`
        : `${(cause as Error | undefined)?.message ?? 'it failed'}`;
    return [
      {
        kind: 'host-unreachable',
        id: host,
        host,
        detail: `compute host ${host} was not audited: ${why}`,
      },
    ];
  }
}

/**
 * bootflow's leak audit (admin): an empty list means nothing leaked. The controller checks the databases,
 * then each registered compute host checks itself on its own queue, all hosts at once.
 */
export async function auditCloud(request: AuditRequest): Promise<LeakFinding[]> {
  const session = await call(controller.authenticate, 'keystone: authenticate', request.auth);
  const options = { buildsInFlight: request.buildsInFlight === true };
  if (!patched('audit-asks-each-host')) {
    return call(audit.runLeakAudit, 'bootflow: leak audit', { token: session.token, ...options });
  }
  const plan = await call(audit.auditController, 'bootflow: leak audit (databases)', {
    token: session.token,
    ...options,
  });
  const pickupMs = request.hostPickupMs ?? HOST_AUDIT_PICKUP_MS;
  const perHost = await Promise.all(
    plan.hosts.map(({ host, liveInstances }) =>
      auditOneHost(host, liveInstances, plan.dhcpNetworks, pickupMs),
    ),
  );
  return [...plan.findings, ...perHost.flat()];
}
