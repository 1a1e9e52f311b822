/**
 * A whole bootflow deployment inside one test process: a temporary embedded cloud (bootstrapped like
 * DevStack), the time-skipping Temporal test server with the boot search attributes registered, and the
 * worker roles on their queues — `controller` (workflows + controller activities), `network`, and
 * `compute@<host>` per host, which a test can stop to make a host "down".
 *
 * The cloud runs on a ManualClock that follows the test server's time: every activity moves it to the
 * server time at which the activity was scheduled, so skipping hours in the test server expires tokens and
 * heartbeats in the cloud too. Compute services heartbeat whenever that clock moves on.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  bundleWorkflowCode,
  Worker,
  type ActivityInterceptorsFactory,
  type WorkflowBundle,
} from '@temporalio/worker';
import { temporal } from '@temporalio/proto';
import {
  createComputeActivities,
  createControllerActivities,
  createNetworkActivities,
} from '../../activities';
import {
  createOperatorControllerActivities,
  createOperatorNetworkActivities,
} from '../../activities/operator';
import { auditLeaks, type LeakFinding } from '../../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../../cloud/bootstrap';
import { ManualClock } from '../../cloud/clock';
import type { ComputeHost } from '../../cloud/compute';
import { DEFAULT_HOSTS } from '../../cloud/hosts';
import { openCloud, openComputeHost, type Cloud } from '../../cloud/index';
import { bootWorkflowId, computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from '../../workflows/names';
import { ensureSearchAttributes } from '../../lib/search-attributes';
import type { BootAuth, BootRequest, BootResult } from '../../workflows/types';
import { testDbConfig, type TestDb } from './cloud-db';
import { grantingInterceptor } from './grants';
import { devServerEnv, timeSkippingEnv } from './temporal-env';

export const HOSTS = DEFAULT_HOSTS.map((h) => h.host);
export type BootWorkflowType = 'createInstance' | 'createInstanceSequential';
const HISTORIES_DIR = path.join(__dirname, '..', 'histories');
/** Set BOOTFLOW_WRITE_HISTORIES=1 to (re)write the replay histories under test/histories/. */
export const WRITE_HISTORIES = process.env.BOOTFLOW_WRITE_HISTORIES === '1';

let bundle: Promise<WorkflowBundle> | undefined;
/** The workflow bundle, built once per test process. */
export function workflowBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({ workflowsPath: require.resolve('../../workflows/all') });
  return bundle;
}

interface RunningWorker {
  worker: Worker;
  done: Promise<void>;
}

export interface BootHarness {
  env: TestWorkflowEnvironment;
  cloud: Cloud;
  boot: BootstrapResult;
  clock: ManualClock;
  computeHosts: Map<string, ComputeHost>;
  demoAuth(): BootAuth;
  /** A boot request from the demo user on the private network, with the bootstrap image. */
  request(requestId: string, overrides?: Partial<BootRequest>): BootRequest;
  /** Starts createInstance, or its benchmarks' variant without parallel sections. */
  startBoot(request: BootRequest, workflowType?: BootWorkflowType): Promise<WorkflowHandle>;
  runBoot(request: BootRequest): Promise<BootResult>;
  /**
   * Moves the cloud's clock to the test server's time (which jumps whenever the server skips through
   * idle timers, e.g. while a client awaits a finished workflow) and lets the hosts heartbeat. Done before
   * every boot and before a test mints a token itself.
   */
  syncClock(): Promise<void>;
  /** Brings the set of hosts whose compute worker runs to exactly `hosts`. */
  setRunningHosts(hosts: readonly string[]): Promise<void>;
  audit(): Promise<LeakFinding[]>;
  /** Saves the workflow's history under test/histories/<name>.json when WRITE_HISTORIES is set. */
  keepHistory(name: string, handle: WorkflowHandle): Promise<void>;
  close(): Promise<void>;
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

export interface BootHarnessOptions {
  /**
   * 'dev-server': a real dev server instead of the time-skipping one, for what that lacks (workflow
   * reset, schedules, visibility queries); time then runs at its real pace.
   */
  temporal?: 'time-skipping' | 'dev-server';
}

export async function openBootHarness(label: string, options: BootHarnessOptions = {}): Promise<BootHarness> {
  const db: TestDb = testDbConfig(label);
  const clock = new ManualClock(Date.now());
  const cloud = await openCloud({ db: db.config, clock });
  const boot = await bootstrapCloud(cloud);
  const computeHosts = new Map<string, ComputeHost>();
  for (const spec of DEFAULT_HOSTS) {
    computeHosts.set(
      spec.host,
      await openComputeHost({
        dataDir: cloud.dataDir,
        host: spec.host,
        clock,
        capabilities: {
          vcpus: spec.vcpus,
          memoryMb: spec.memoryMb,
          diskGb: spec.diskGb,
          cpuArch: spec.cpuArch as 'x86_64',
          hypervisorType: spec.hypervisorType,
          availabilityZone: spec.availabilityZone,
        },
      }),
    );
  }

  // nova-compute's report_state: the hosts stay "up" however far the test server skips.
  let lastBeat = clock.now();
  let beating: Promise<void> | undefined;
  const heartbeat = async () => {
    if (clock.now() - lastBeat < 20_000) return;
    beating ??= (async () => {
      lastBeat = clock.now();
      for (const host of HOSTS) await cloud.nova.heartbeat(host);
    })().finally(() => (beating = undefined));
    await beating;
  };

  // What a client does: the caller's credentials become a grant for each workflow it starts.
  const clientInterceptors = [
    grantingInterceptor(
      () => cloud.keystone,
      () => harness.syncClock(),
    ),
  ];
  const env =
    options.temporal === 'dev-server'
      ? await devServerEnv([], undefined, clientInterceptors)
      : await timeSkippingEnv(undefined, clientInterceptors);
  await ensureSearchAttributes(env.connection, env.namespace ?? 'default');
  const interceptors = { activity: [clockFollower(clock, heartbeat)] };
  const workflowBundleCode = await workflowBundle();

  const start = async (taskQueue: string, options: Partial<Parameters<typeof Worker.create>[0]>) => {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      interceptors,
      shutdownGraceTime: '2 seconds',
      ...options,
    });
    return { worker, done: worker.run() } satisfies RunningWorker;
  };

  const controller = await start(CONTROLLER_QUEUE, {
    workflowBundle: workflowBundleCode,
    // nova-api's read side too (the console output's server lookup), as worker.ts's controller serves it.
    activities: { ...createControllerActivities(cloud), ...createOperatorControllerActivities(cloud) },
  });
  const network = await start(NETWORK_QUEUE, {
    activities: {
      ...createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
      ...createOperatorNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
    },
  });
  const computeWorkers = new Map<string, RunningWorker>();

  const stop = async (running: RunningWorker) => {
    running.worker.shutdown();
    await running.done;
  };

  const harness: BootHarness = {
    env,
    cloud,
    boot,
    clock,
    computeHosts,
    demoAuth: () => ({
      credentials: {
        username: boot.demo.username,
        password: boot.demo.password,
        projectName: boot.demo.projectName,
        userDomainName: boot.demo.userDomainName,
        projectDomainName: boot.demo.projectDomainName,
      },
    }),
    request: (requestId, overrides = {}) => ({
      requestId,
      auth: harness.demoAuth(),
      name: `vm-${requestId}`,
      flavor: 'm1.tiny',
      image: boot.imageId,
      networks: [boot.privateNetworkId],
      ...overrides,
    }),
    async syncClock() {
      const serverNow = await env.currentTimeMs();
      if (serverNow > clock.now()) clock.set(serverNow);
      await heartbeat();
    },
    async startBoot(request, workflowType = 'createInstance') {
      await harness.syncClock();
      const workflowId = bootWorkflowId(request.requestId);
      return env.client.workflow.start(workflowType, {
        taskQueue: CONTROLLER_QUEUE,
        workflowId,
        args: [request],
      });
    },
    async runBoot(request) {
      const handle = await harness.startBoot(request);
      return (await handle.result()) as BootResult;
    },
    async setRunningHosts(hosts) {
      for (const [host, running] of [...computeWorkers]) {
        if (hosts.includes(host)) continue;
        computeWorkers.delete(host);
        await stop(running);
      }
      for (const host of hosts) {
        if (computeWorkers.has(host)) continue;
        const compute = computeHosts.get(host);
        if (!compute) throw new Error(`unknown host ${host}`);
        computeWorkers.set(
          host,
          await start(computeQueue(host), { activities: createComputeActivities(compute) }),
        );
      }
    },
    audit: () => auditLeaks(cloud, { hosts: [...computeHosts.values()] }),
    async keepHistory(name, handle) {
      await keepHistory(name, handle);
    },
    async close() {
      for (const running of computeWorkers.values()) await stop(running);
      await stop(network);
      await stop(controller);
      await env.teardown();
      for (const compute of computeHosts.values()) await compute.close();
      await cloud.close();
      await db.cleanup();
    },
  };
  await harness.setRunningHosts(HOSTS);
  return harness;
}

/**
 * Saves a workflow's history under test/histories/[<subdirectory>/]<name>.json when WRITE_HISTORIES is set
 * (a handle without a run id: its latest run).
 */
export async function keepHistory(
  name: string,
  handle: Pick<WorkflowHandle, 'fetchHistory'>,
  subdirectory?: string,
): Promise<void> {
  if (!WRITE_HISTORIES) return;
  const dir = subdirectory ? path.join(HISTORIES_DIR, subdirectory) : HISTORIES_DIR;
  mkdirSync(dir, { recursive: true });
  const history = temporal.api.history.v1.History.fromObject(await handle.fetchHistory());
  // protobufjs's JSON form (@temporalio/common's historyToJSON trips over its second protobufjs copy).
  const json = temporal.api.history.v1.History.toObject(history, {
    longs: String,
    enums: String,
    bytes: String,
  });
  writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(json) + '\n');
}

/** The stored histories of `test/histories/` (boots and deletes), or of one of its subdirectories. */
export function storedHistories(
  subdirectory?: string,
): Array<{ workflowId: string; history: temporal.api.history.v1.History }> {
  const dir = subdirectory ? path.join(HISTORIES_DIR, subdirectory) : HISTORIES_DIR;
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch {
    return [];
  }
  return files.sort().map((file) => ({
    workflowId: file.replace(/\.json$/, ''),
    history: temporal.api.history.v1.History.fromObject(
      JSON.parse(readFileSync(path.join(dir, file), 'utf8')),
    ),
  }));
}
