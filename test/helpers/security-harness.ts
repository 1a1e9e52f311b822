/**
 * A whole bootflow deployment in the test process, wired like worker.ts: the time-skipping Temporal test
 * server; a `controller` worker with every workflow the client starts (workflows/all: createInstance,
 * deleteInstance, showServer, listServers, listHypervisors, auditCloud) and the controller and operator
 * activities; a `network` worker with neutron's boot and operator activities; a `compute@<host>` worker per
 * host. The client calls go through the same workflow types and request shapes as client.ts, so a test of
 * this harness tests the entry point a user reaches.
 *
 * Optionally with a DataConverter (the encrypting one) on every worker and the client, plus a raw client
 * without it to read the histories as the Temporal service stores them.
 *
 * The cloud runs on a ManualClock that follows the test server's time (as the boot harness does), so
 * skipping time expires tokens; a test may also move the clock ahead itself.
 */
import { randomUUID } from 'node:crypto';
import { Client, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, type DataConverter } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type ActivityInterceptorsFactory, type WorkerOptions } from '@temporalio/worker';
import {
  createComputeActivities,
  createControllerActivities,
  createNetworkActivities,
} from '../../activities';
import {
  createOperatorControllerActivities,
  createOperatorNetworkActivities,
} from '../../activities/operator';
import { auditLeaks } from '../../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../../cloud/bootstrap';
import { ManualClock } from '../../cloud/clock';
import type { ComputeHost } from '../../cloud/compute';
import { capabilitiesOf, DEFAULT_HOSTS } from '../../cloud/hosts';
import { openCloud, openComputeHost, type Cloud } from '../../cloud/index';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from '../../workflows/names';
import { ensureSearchAttributes } from '../../lib/search-attributes';
import type { BootAuth, PasswordCredentials } from '../../workflows/types';
import { testDbConfig, type TestDb } from './cloud-db';
import { grantingInterceptor } from './grants';
import { DbSnapshotter, snapshotFiles, type CloudState, type Outcome } from './security';
import { timeSkippingEnv } from './temporal-env';

const HOSTS = DEFAULT_HOSTS.map((h) => h.host);

/**
 * Each suite on this harness, hooks included, ends well within this. One that has not is stuck (on a shared
 * machine an ephemeral test server's port can be taken by another process's between choice and bind): it
 * fails then instead of hanging the whole run.
 */
export const HARNESS_TIMEOUT = { timeout: 10 * 60_000 };

/** The workflow types client.ts starts, by the command that starts them. */
export const CLIENT_WORKFLOWS = {
  create: 'createInstance',
  delete: 'deleteInstance',
  show: 'showServer',
  list: 'listServers',
  hypervisorList: 'listHypervisors',
  audit: 'auditCloud',
} as const;
export type ClientOperation = keyof typeof CLIENT_WORKFLOWS;

export interface SecurityHarnessOptions {
  /** On every worker and on `client`; `rawClient` never has it. */
  dataConverter?: DataConverter;
}

export interface SecurityHarness {
  env: TestWorkflowEnvironment;
  /** The client the user has (with the data converter, if any). */
  client: Client;
  /** Reads what the Temporal service stores: no codec, no failure converter. */
  rawClient: Client;
  cloud: Cloud;
  boot: BootstrapResult;
  clock: ManualClock;
  testDb: TestDb;
  computeHosts: Map<string, ComputeHost>;
  snapshotter: DbSnapshotter;
  /** Password credentials for a user, as the client sends them (from the openrc file or flags). */
  credentials(username: string, password: string, projectName: string): BootAuth;
  demoAuth(): BootAuth;
  adminAuth(): BootAuth;
  /** Starts one of the client's workflows with a fresh workflow id (or the one given). */
  start(operation: ClientOperation, request: unknown, workflowId?: string): Promise<WorkflowHandle>;
  /** Runs it to its end: the result, or the workflow's failure thrown. */
  run<T = unknown>(operation: ClientOperation, request: unknown, workflowId?: string): Promise<T>;
  /** 'allowed' or the typed failure the workflow ended with. */
  outcome(operation: ClientOperation, request: unknown): Promise<Outcome>;
  /**
   * Brings the cloud's clock up to the test server's time (which skips ahead while workflows wait), so a
   * token issued now is not already old when the first activity moves the clock on.
   */
  syncClock(): Promise<void>;
  /** Rows of the six databases, files under the data directory, and the leak audit (hosts included). */
  state(): Promise<CloudState>;
  close(): Promise<void>;
}

/** The first typed ApplicationFailure in a failure's cause chain (the workflow's own, or an activity's). */
export function typedFailureOf(err: unknown): ApplicationFailure | undefined {
  for (let cause: unknown = err; cause instanceof Error; cause = (cause as Error).cause) {
    if (cause instanceof ApplicationFailure && cause.type) return cause;
  }
  return undefined;
}

export function failureTypeOf(err: unknown): string | undefined {
  return typedFailureOf(err)?.type ?? undefined;
}

function clockFollower(clock: ManualClock, onMove: () => Promise<void>): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const serverNow = ctx.info.currentAttemptScheduledTimestampMs;
        if (serverNow > clock.now()) {
          clock.set(serverNow);
          await onMove();
        }
        return next(input);
      },
    },
  });
}

export async function openSecurityHarness(
  label: string,
  options: SecurityHarnessOptions = {},
): Promise<SecurityHarness> {
  const testDb = testDbConfig(label);
  const clock = new ManualClock(Date.now());
  const cloud = await openCloud({ db: testDb.config, clock });
  const boot = await bootstrapCloud(cloud);
  // Tokens issued in the millisecond of bootstrap's password set-up would count as revoked by it.
  clock.advance(1000);
  const computeHosts = new Map<string, ComputeHost>();
  for (const spec of DEFAULT_HOSTS) {
    computeHosts.set(
      spec.host,
      await openComputeHost({
        dataDir: cloud.dataDir,
        host: spec.host,
        clock,
        capabilities: capabilitiesOf(spec),
      }),
    );
  }
  // nova-compute's report_state: the hosts stay "up" however far the test server (or a test) moves time.
  let lastBeat = clock.now();
  const heartbeat = async () => {
    if (clock.now() - lastBeat < 20_000) return;
    lastBeat = clock.now();
    for (const host of HOSTS) await cloud.nova.heartbeat(host);
  };

  const { dataConverter } = options;
  // What a client does: the caller's credentials become a grant for each workflow it starts.
  const env = await timeSkippingEnv(dataConverter, [
    grantingInterceptor(
      () => cloud.keystone,
      () => harness.syncClock(),
    ),
  ]);
  await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
  const rawClient = new Client({ connection: env.connection, namespace: env.namespace ?? 'default' });

  const running: Array<{ worker: Worker; done: Promise<void> }> = [];
  const startWorker = async (taskQueue: string, workerOptions: Partial<WorkerOptions>) => {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      interceptors: { activity: [clockFollower(clock, heartbeat)] },
      shutdownGraceTime: '2 seconds',
      ...(dataConverter ? { dataConverter } : {}),
      ...workerOptions,
    });
    running.push({ worker, done: worker.run() });
  };
  await startWorker(CONTROLLER_QUEUE, {
    workflowsPath: require.resolve('../../workflows/all'),
    activities: {
      ...createControllerActivities(cloud),
      ...createOperatorControllerActivities(cloud),
    },
  });
  await startWorker(NETWORK_QUEUE, {
    activities: {
      ...createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
      ...createOperatorNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
    },
  });
  for (const [host, compute] of computeHosts) {
    await startWorker(computeQueue(host), { activities: createComputeActivities(compute) });
  }

  const snapshotter = new DbSnapshotter(testDb.config);
  const credentials = (username: string, password: string, projectName: string): BootAuth => ({
    credentials: {
      username,
      password,
      projectName,
      userDomainName: 'Default',
      projectDomainName: 'Default',
    } satisfies PasswordCredentials,
  });

  const harness: SecurityHarness = {
    env,
    client: env.client,
    rawClient,
    cloud,
    boot,
    clock,
    testDb,
    computeHosts,
    snapshotter,
    credentials,
    demoAuth: () => credentials(boot.demo.username, boot.demo.password, boot.demo.projectName),
    adminAuth: () => credentials(boot.admin.username, boot.admin.password, boot.admin.projectName),
    async start(operation, request, workflowId) {
      const id = workflowId ?? `sec-${operation}-${randomUUID()}`;
      const workflowType = CLIENT_WORKFLOWS[operation];
      return env.client.workflow.start(workflowType, {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: id,
        args: [request],
        workflowExecutionTimeout: '1 day',
      });
    },
    async run<T>(operation: ClientOperation, request: unknown, workflowId?: string): Promise<T> {
      const handle = await harness.start(operation, request, workflowId);
      return (await handle.result()) as T;
    },
    async outcome(operation, request) {
      try {
        await harness.run(operation, request);
        return 'allowed';
      } catch (err) {
        if (!(err instanceof WorkflowFailedError)) throw err;
        const type = failureTypeOf(err);
        if (type === undefined) throw err;
        return type as Outcome;
      }
    },
    async syncClock() {
      const serverNow = await env.currentTimeMs();
      if (serverNow > clock.now()) clock.set(serverNow);
      await heartbeat();
    },
    async state() {
      return {
        rows: await snapshotter.snapshot(),
        files: snapshotFiles(cloud.dataDir),
        leaks: await auditLeaks(cloud, { hosts: [...computeHosts.values()] }),
      };
    },
    async close() {
      for (const { worker } of running) worker.shutdown();
      await Promise.allSettled(running.map((r) => r.done));
      await env.teardown();
      await snapshotter.close();
      for (const compute of computeHosts.values()) await compute.close();
      await cloud.close();
      await testDb.cleanup();
    },
  };
  return harness;
}
