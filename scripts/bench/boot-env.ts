/**
 * What the boot benchmarks run on: a Temporal server (a dev server started here, or TEMPORAL_ADDRESS), and
 * per phase a fresh embedded cloud (bootstrapped like DevStack, three large hosts, a /20 tenant network,
 * unlimited demo quota) with every worker role in this process: `controller` (the real workflows and the
 * skeleton in one bundle), `network` and `compute@<host>`. A fresh cloud per phase keeps phases independent
 * (no instances left over from the one before).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkflowBundle } from '@temporalio/worker';
import {
  createComputeActivities,
  createControllerActivities,
  createNetworkActivities,
} from '../../activities';
import { createSkeletonActivities } from '../../activities/skeleton';
import { bootstrapCloud } from '../../cloud/bootstrap';
import type { ComputeHost } from '../../cloud/compute';
import { capabilitiesOf, type HostSpec } from '../../cloud/hosts';
import { openCloud, openComputeHost, type Cloud } from '../../cloud/index';
import { temporalSettings } from '../../lib/connection';
import { startDevServerOnFreePorts, type RunningDevServer } from '../../lib/dev-server';
import { installTemporalRuntime } from '../../lib/logger';
import { computeQueue, CONTROLLER_QUEUE, NETWORK_QUEUE } from '../../workflows/names';
import { BOOT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { bootWorkflowId } from '../../workflows/names';
import type { BootRequest } from '../../workflows/types';
import { defaultConfig } from '../../worker';

export interface TemporalTarget {
  address: string;
  namespace: string;
  /** The dev server this run started (null with TEMPORAL_ADDRESS). */
  server: RunningDevServer | null;
  /** On the workers' NativeConnection when `eagerStart`, else a connection of its own (as client.ts). */
  client: Client;
  /** Starts ask for eager workflow start (`--eager-start`): the first workflow task in the start's answer. */
  eagerStart: boolean;
  nativeConnection: NativeConnection;
  close(): Promise<void>;
}

async function registerSearchAttributes(connection: Connection, namespace: string): Promise<void> {
  const KEYWORD = 2; // IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
  const searchAttributes = Object.fromEntries(Object.keys(BOOT_SEARCH_ATTRIBUTES).map((n) => [n, KEYWORD]));
  try {
    await connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  } catch (err) {
    if (!/already exists/i.test((err as Error).message)) throw err;
  }
}

/**
 * A dev server of our own, or the one TEMPORAL_ADDRESS names (Temporal's envconfig settings). With
 * `eagerStart` the client shares the workers' NativeConnection and starts ask for eager workflow start.
 */
export async function openTemporal(
  log: (line: string) => void,
  options: { eagerStart?: boolean } = {},
): Promise<TemporalTarget> {
  installTemporalRuntime();
  let server: RunningDevServer | null = null;
  let dataDir: string | null = null;
  let address: string;
  let namespace = 'default';
  let connectionOptions: Parameters<typeof Connection.connect>[0] = {};
  if (process.env.TEMPORAL_ADDRESS) {
    const settings = temporalSettings();
    ({ address, namespace } = settings);
    connectionOptions = settings.connectionOptions;
    log(`boot: Temporal at ${address} (TEMPORAL_ADDRESS)`);
  } else {
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-bench-temporal-'));
    server = await startDevServerOnFreePorts({
      dataDir,
      searchAttributes: { ...BOOT_SEARCH_ATTRIBUTES },
    });
    address = server.address;
    log(`boot: dev server started at ${address} (pid ${server.process.pid})`);
  }
  const connection = await Connection.connect({ ...connectionOptions, address });
  if (!server) await registerSearchAttributes(connection, namespace);
  const nativeConnection = await NativeConnection.connect({
    address,
    ...(connectionOptions.tls ? { tls: connectionOptions.tls } : {}),
    ...(connectionOptions.apiKey ? { apiKey: connectionOptions.apiKey as string } : {}),
    ...(connectionOptions.metadata ? { metadata: connectionOptions.metadata } : {}),
  });
  return {
    address,
    namespace,
    server,
    // Eager start needs the client on the connection the controller worker polls through (the SDK
    // refuses it elsewhere), as worker.ts's API beside the controller role.
    client: new Client({ connection: options.eagerStart ? nativeConnection : connection, namespace }),
    eagerStart: options.eagerStart === true,
    nativeConnection,
    async close() {
      await nativeConnection.close();
      await connection.close();
      await server?.stop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

let bundle: Promise<WorkflowBundle> | undefined;
export function benchBundle(): Promise<WorkflowBundle> {
  bundle ??= bundleWorkflowCode({
    workflowsPath: require.resolve('./bench-workflows'),
    logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {}, log() {} },
  });
  return bundle;
}

/** Three equal hosts with room for 400 m1.tiny each (VCPU 128 × 4, 256 GB, 512 GB): 1,200 in all. */
export const BENCH_HOSTS: HostSpec[] = [1, 2, 3].map((i) => ({
  host: `compute${i}`,
  availabilityZone: 'nova',
  vcpus: 128,
  memoryMb: 262_144,
  diskGb: 512,
  cpuArch: 'x86_64',
  hypervisorType: 'QEMU',
}));

export interface BootCloud {
  cloud: Cloud;
  computeHosts: ComputeHost[];
  imageId: string;
  networkId: string;
  token: string;
  /** One more password login of the demo user (a scrypt hash): what a boot with credentials adds. */
  passwordLogin(): Promise<void>;
  /** A boot request carrying Keystone's operation grant for `workflowType` with the boot's workflow id. */
  request(requestId: string, overrides?: Partial<BootRequest>, workflowType?: string): Promise<BootRequest>;
  close(): Promise<void>;
}

export async function openBootCloud(label: string): Promise<BootCloud> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `bootflow-bench-${label}-`));
  const cloud = await openCloud({ db: { dataDir } });
  const boot = await bootstrapCloud(cloud, { hosts: BENCH_HOSTS });
  await cloud.nova.setQuotaLimits(boot.demo.projectId, {
    instances: -1,
    cores: -1,
    ram: -1,
    volumes: -1,
    gigabytes: -1,
    ports: -1,
  });
  const network = await cloud.neutron.createNetwork({
    name: 'bench',
    projectId: boot.demo.projectId,
    requestKey: 'bench:network',
  });
  await cloud.neutron.createSubnet({
    networkId: network.id,
    cidr: '10.64.0.0/20',
    name: 'bench-subnet',
    requestKey: 'bench:subnet',
  });
  const computeHosts: ComputeHost[] = [];
  for (const spec of BENCH_HOSTS) {
    computeHosts.push(
      await openComputeHost({ dataDir, host: spec.host, capabilities: capabilitiesOf(spec) }),
    );
  }
  // A client's session: one password login (one scrypt), then the token on every boot.
  const login = () =>
    cloud.keystone.authenticate({
      username: boot.demo.username,
      password: boot.demo.password,
      projectName: boot.demo.projectName,
    });
  const { token } = await login();
  // nova-compute's report_state, so the hosts stay up however long a phase runs.
  const heartbeat = setInterval(() => {
    for (const spec of BENCH_HOSTS) void cloud.nova.heartbeat(spec.host).catch(() => undefined);
  }, 10_000);
  return {
    cloud,
    computeHosts,
    imageId: boot.imageId,
    networkId: network.id,
    token,
    async passwordLogin() {
      await login();
    },
    request: async (requestId, overrides = {}, workflowType = 'createInstance') => ({
      requestId,
      auth: {
        grant: (
          await cloud.keystone.issueGrant(token, { workflowType, workflowId: bootWorkflowId(requestId) })
        ).grant,
      },
      name: `vm-${requestId}`,
      flavor: 'm1.tiny',
      image: boot.imageId,
      networks: [network.id],
      ...overrides,
    }),
    async close() {
      clearInterval(heartbeat);
      for (const host of computeHosts) await host.close();
      await cloud.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface RunningWorkers {
  stop(): Promise<void>;
}

/** Every worker role of the cloud, in this process, on the given connection. */
export async function startWorkers(
  temporal: TemporalTarget,
  bc: Pick<BootCloud, 'cloud' | 'computeHosts'>,
): Promise<RunningWorkers> {
  const skeleton = createSkeletonActivities();
  const { cloud } = bc;
  // The deployment's slots (worker.ts, sized for the cores), not the SDK's defaults: 40 workflow tasks and
  // 100 local activities at once measured a controller nobody runs.
  const slots = defaultConfig();
  const common = {
    connection: temporal.nativeConnection,
    namespace: temporal.namespace,
    shutdownGraceTime: '5 seconds',
    maxConcurrentActivityTaskExecutions: slots.maxConcurrentActivities,
  };
  const workers = [
    await Worker.create({
      ...common,
      taskQueue: CONTROLLER_QUEUE,
      workflowBundle: await benchBundle(),
      activities: { ...createControllerActivities(cloud), ...skeleton },
      maxConcurrentWorkflowTaskExecutions: slots.maxConcurrentWorkflowTasks,
      maxCachedWorkflows: slots.maxCachedWorkflows,
      maxConcurrentLocalActivityExecutions: slots.maxConcurrentLocalActivities,
    }),
    await Worker.create({
      ...common,
      taskQueue: NETWORK_QUEUE,
      activities: {
        ...createNetworkActivities({ neutron: cloud.neutron, identity: cloud.keystone }),
        ...skeleton,
      },
    }),
  ];
  for (const host of bc.computeHosts) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: computeQueue(host.host),
        activities: { ...createComputeActivities(host), ...skeleton },
      }),
    );
  }
  const running = workers.map((w) => w.run());
  return {
    async stop() {
      for (const w of workers) w.shutdown();
      await Promise.all(running);
    },
  };
}
