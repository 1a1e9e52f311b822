/**
 * bootflow's workers, in the seed's three-node layout:
 *
 *   --role controller                 workflows + Keystone, nova-api/conductor/scheduler, Placement, Glance, Cinder
 *   --role network                    neutron-server (the `network` queue)
 *   --role compute --host compute2    nova-compute of one host (`compute@compute2`); several --host allowed
 *   --role api                        the OpenStack HTTP APIs (api/): Keystone, Nova, Glance, Neutron, Cinder,
 *                                     Placement on one listener (--api-host, --api-port, --public-url, TLS)
 *   --role all (default)              all of it in one process, with the compute hosts compute1..3
 *
 * A compute worker opens only its host's directory. It registers and heartbeats its host the way
 * nova-compute talks to nova-conductor: through Temporal, by signalling its `compute-service-<host>`
 * workflow, which runs the registration and the state reports on the controller. SIGINT/SIGTERM stop the
 * heartbeats, let in-flight activities finish (or hand them back after the grace time), then close the
 * databases. Connection settings come from Temporal's envconfig (TEMPORAL_ADDRESS, ...), the cloud's
 * databases from BOOTFLOW_DATA / BOOTFLOW_DB_URL.
 */
import os from 'node:os';
import { Command, Option } from 'commander';
import { Client } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createComputeActivities, createControllerActivities, createNetworkActivities } from './activities';
import { createComputeServiceActivities } from './activities/compute-service';
import { createOperatorControllerActivities, createOperatorNetworkActivities } from './activities/operator';
import { ensureReconcilerSchedule, RECONCILER_SCHEDULE_ID } from './lib/reconciler-schedule';
import { NETWORK_AGENTS, type ComputeHost, type NetworkAgentKind } from './cloud/compute';
import { dbConfigFromEnv } from './cloud/db';
import { capabilitiesOf, DEFAULT_HOSTS, defaultHostSpec, type HostSpec } from './cloud/hosts';
import {
  SERVICE_KEYS_FILE,
  loadComputeServiceKeys,
  loadHostServiceKey,
  signServiceMessage,
} from './cloud/nova';
import { openCloud, openComputeHost, type Cloud } from './cloud/index';
import { Keystone } from './cloud/keystone';
import { Neutron } from './cloud/neutron';
import { KeyringError, verifyKeyCheck, verifyKeyringAgainstHistory } from './lib/codec';
import { ensureSearchAttributes } from './lib/search-attributes';
import { temporalSettings } from './lib/connection';
import { createLogger, installTemporalRuntime } from './lib/logger';
import { EXIT, UserError } from './lib/command-line/errors';
import { positiveWholeFlag, positiveWholeFromEnv } from './lib/command-line/numbers';
import { bootflowDataConverter, loadKeyringOrExplain } from './lib/command-line/temporal';
import {
  computeService,
  computeServiceWorkflowId,
  POWER_SYNC_INTERVAL_MS,
  type ComputeServiceInput,
  heartbeatSignal,
  registerSignal,
} from './workflows/compute-service';
import { computeQueue, CONTROLLER_QUEUE, destroyEvacuatedWorkflowId, NETWORK_QUEUE } from './workflows/names';
import { DEFAULT_API_PORT, DEFAULT_REGION, startApiServer, type ApiServer } from './api';
import { apiSettings, type ApiSettings } from './api/settings';
import { usePrivateUmask } from './lib/file-modes';
import { VIRT_DRIVER_TYPES, type VirtDriverType } from './cloud/compute';

export type Role = 'controller' | 'network' | 'compute' | 'api';
const ROLES: readonly Role[] = ['controller', 'network', 'compute', 'api'];

export interface WorkerConfig {
  roles: Role[];
  hosts: string[];
  dataDir: string;
  /** Activities running at once per worker (they wait on databases and files, not on the CPU). */
  maxConcurrentActivities: number;
  /** Workflow tasks running at once on the controller (each also waits on its local activities). */
  maxConcurrentWorkflowTasks: number;
  /** Workflows kept in the sticky cache (each a few MB at most). */
  maxCachedWorkflows: number;
  /**
   * Local activities running at once on the controller: the boot's controller steps, each a transaction on
   * the embedded cloud's databases (waiting on them, not on the CPU).
   */
  maxConcurrentLocalActivities: number;
  /** How long in-flight activities may take to finish on shutdown before they are cancelled. */
  shutdownGraceSeconds: number;
  heartbeatSeconds: number;
  /** How often each compute host's power states are synced to the controller (Nova's sync_power_state_interval). */
  powerSyncSeconds: number;
  /** The api role's listener and public URL. */
  api: ApiSettings;
  /** The compute hosts' network agent: `fake` records devices, `linux-bridge` creates them (root). */
  networkAgent: NetworkAgentKind;
  /** The compute hosts' virt driver: `fake` (no guest runs) or `qemu` (real guests). */
  virtDriver: VirtDriverType;
}

/** Defaults sized for a 2-core machine; each has a flag and an environment variable. */
export function defaultConfig(
  env: NodeJS.ProcessEnv = process.env,
): Omit<WorkerConfig, 'roles' | 'hosts' | 'api'> {
  const cores = Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  return {
    dataDir: dbConfigFromEnv(env).dataDir,
    // A bad value is a usage error naming the variable, never a NaN let through.
    maxConcurrentActivities: positiveWholeFromEnv(env, 'BOOTFLOW_MAX_ACTIVITIES', 20),
    maxConcurrentWorkflowTasks: positiveWholeFromEnv(
      env,
      'BOOTFLOW_MAX_WORKFLOW_TASKS',
      // A workflow task holds its slot while its local activities (the controller steps) run on the
      // cloud's databases: 2 x cores booted 6.1/s at 200 at once, 8 x cores 7.3/s (docs/benchmarks.md).
      Math.max(2, cores * 8),
    ),
    maxCachedWorkflows: positiveWholeFromEnv(env, 'BOOTFLOW_STICKY_CACHE', 250),
    maxConcurrentLocalActivities: positiveWholeFromEnv(
      env,
      'BOOTFLOW_MAX_LOCAL_ACTIVITIES',
      Math.max(4, cores * 16),
    ),
    shutdownGraceSeconds: positiveWholeFromEnv(env, 'BOOTFLOW_SHUTDOWN_GRACE', 10),
    heartbeatSeconds: positiveWholeFromEnv(env, 'BOOTFLOW_HEARTBEAT_SECONDS', 10),
    powerSyncSeconds: positiveWholeFromEnv(env, 'BOOTFLOW_POWER_SYNC_SECONDS', POWER_SYNC_INTERVAL_MS / 1000),
    networkAgent: (env.BOOTFLOW_NETWORK_AGENT ?? 'fake') as NetworkAgentKind,
    virtDriver: parseVirtDriver(env.BOOTFLOW_VIRT_DRIVER ?? 'fake'),
  };
}

function parseVirtDriver(value: string): VirtDriverType {
  if (!(VIRT_DRIVER_TYPES as readonly string[]).includes(value))
    throw new UserError(`unknown virt driver '${value}' (${VIRT_DRIVER_TYPES.join(' or ')})`, EXIT.USAGE);
  return value as VirtDriverType;
}

function list(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean),
  ];
}

export function parseWorkerArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const defaults = defaultConfig(env);
  const opts = new Command('worker')
    .description('bootflow worker: controller, network and compute roles on their Temporal task queues')
    .addOption(
      new Option('--role <roles>', 'controller, network, compute, api or all (comma-separated or repeated)')
        .argParser(list)
        .default([], 'all'),
    )
    .option('--host <hosts>', 'compute host(s) to serve (default compute1,compute2,compute3)', list, [])
    .option('--data-dir <dir>', 'data directory (BOOTFLOW_DATA)', defaults.dataDir)
    .option(
      '--max-concurrent-activities <n>',
      'activities at once per worker',
      positiveWholeFlag('--max-concurrent-activities'),
      defaults.maxConcurrentActivities,
    )
    .option(
      '--max-concurrent-workflow-tasks <n>',
      'workflow tasks at once',
      positiveWholeFlag('--max-concurrent-workflow-tasks'),
      defaults.maxConcurrentWorkflowTasks,
    )
    .option(
      '--max-cached-workflows <n>',
      'sticky cache size',
      positiveWholeFlag('--max-cached-workflows'),
      defaults.maxCachedWorkflows,
    )
    .option(
      '--max-concurrent-local-activities <n>',
      'local activities (the controller steps) at once',
      positiveWholeFlag('--max-concurrent-local-activities'),
      defaults.maxConcurrentLocalActivities,
    )
    .option(
      '--shutdown-grace <seconds>',
      'time in-flight activities get on shutdown',
      positiveWholeFlag('--shutdown-grace'),
      defaults.shutdownGraceSeconds,
    )
    .option(
      '--heartbeat <seconds>',
      'compute service report interval',
      positiveWholeFlag('--heartbeat'),
      defaults.heartbeatSeconds,
    )
    .option(
      '--power-sync-interval <seconds>',
      "compute hosts' power-state sync interval (when their compute-service workflow starts)",
      positiveWholeFlag('--power-sync-interval'),
      defaults.powerSyncSeconds,
    )
    .option('--api-host <host>', 'api role: listen address (BOOTFLOW_API_HOST, default 127.0.0.1)')
    .option('--api-port <port>', `api role: port (BOOTFLOW_API_PORT, default ${DEFAULT_API_PORT})`, port)
    .option('--public-url <url>', 'api role: base URL of the catalog endpoints (BOOTFLOW_PUBLIC_URL)')
    .option('--tls-cert <file>', 'api role: PEM certificate (HTTPS; with --tls-key)')
    .option('--tls-key <file>', 'api role: PEM private key')
    .option(
      '--api-concurrent-creates <n>',
      'api role: POST /servers doing their work at once, the rest queued (BOOTFLOW_API_CONCURRENT_CREATES, default 4)',
      positiveWholeFlag('--api-concurrent-creates'),
    )
    .addOption(
      new Option('--network-agent <agent>', "compute hosts' network agent (BOOTFLOW_NETWORK_AGENT)")
        .choices(NETWORK_AGENTS)
        .default(defaults.networkAgent),
    )
    .option(
      '--virt-driver <driver>',
      'compute hosts: fake (no guest runs) or qemu (real guests) (BOOTFLOW_VIRT_DRIVER)',
      parseVirtDriver,
      defaults.virtDriver,
    )
    .exitOverride()
    .parse(argv)
    .opts<{
      role: string[];
      host: string[];
      dataDir: string;
      maxConcurrentActivities: number;
      maxConcurrentWorkflowTasks: number;
      maxCachedWorkflows: number;
      maxConcurrentLocalActivities: number;
      shutdownGrace: number;
      heartbeat: number;
      powerSyncInterval: number;
      apiHost?: string;
      apiPort?: number;
      publicUrl?: string;
      tlsCert?: string;
      tlsKey?: string;
      apiConcurrentCreates?: number;
      networkAgent: NetworkAgentKind;
      virtDriver: VirtDriverType;
    }>();
  const asked = opts.role.length === 0 ? ['all'] : opts.role;
  const roles = new Set<Role>();
  for (const role of asked) {
    if (role === 'all') ROLES.forEach((r) => roles.add(r));
    else if ((ROLES as readonly string[]).includes(role)) roles.add(role as Role);
    else throw new UserError(`unknown role '${role}' (controller, network, compute, api or all)`, EXIT.USAGE);
  }
  if (opts.host.length > 0 && !roles.has('compute')) {
    throw new UserError('--host is for the compute role (add --role compute)', EXIT.USAGE);
  }
  if (!(NETWORK_AGENTS as readonly string[]).includes(opts.networkAgent)) {
    throw new UserError(
      `unknown network agent '${opts.networkAgent}' (${NETWORK_AGENTS.join(' or ')})`,
      EXIT.USAGE,
    );
  }
  const hosts = roles.has('compute')
    ? opts.host.length > 0
      ? [...new Set(opts.host)]
      : DEFAULT_HOSTS.map((h) => h.host)
    : [];
  return {
    roles: ROLES.filter((r) => roles.has(r)),
    hosts,
    dataDir: opts.dataDir,
    maxConcurrentActivities: opts.maxConcurrentActivities,
    maxConcurrentWorkflowTasks: opts.maxConcurrentWorkflowTasks,
    maxCachedWorkflows: opts.maxCachedWorkflows,
    maxConcurrentLocalActivities: opts.maxConcurrentLocalActivities,
    shutdownGraceSeconds: opts.shutdownGrace,
    heartbeatSeconds: opts.heartbeat,
    powerSyncSeconds: opts.powerSyncInterval,
    api: usage(() =>
      apiSettings(
        {
          ...(opts.apiHost !== undefined ? { host: opts.apiHost } : {}),
          ...(opts.apiPort !== undefined ? { port: opts.apiPort } : {}),
          ...(opts.publicUrl !== undefined ? { publicUrl: opts.publicUrl } : {}),
          ...(opts.tlsCert !== undefined ? { tlsCert: opts.tlsCert } : {}),
          ...(opts.tlsKey !== undefined ? { tlsKey: opts.tlsKey } : {}),
          ...(opts.apiConcurrentCreates !== undefined
            ? { concurrentCreates: opts.apiConcurrentCreates }
            : {}),
        },
        env,
      ),
    ),
    networkAgent: opts.networkAgent,
    virtDriver: opts.virtDriver,
  };
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new UserError('--api-port must be a whole number from 0 to 65535', EXIT.USAGE);
  return n;
}

/** A settings error is the user's to fix: a usage error. */
function usage<T>(get: () => T): T {
  try {
    return get();
  } catch (err) {
    throw new UserError((err as Error).message, EXIT.USAGE);
  }
}

export interface RunningWorkers {
  /** Resolves when every worker has stopped and everything is closed. */
  done: Promise<void>;
  /** Stops heartbeats, drains the workers, closes the services (idempotent). */
  shutdown(reason: string): Promise<void>;
}

export async function startWorkers(config: WorkerConfig): Promise<RunningWorkers> {
  const log = createLogger({ name: `worker:${config.roles.join('+')}` });
  installTemporalRuntime(log);
  const keyring = loadKeyringOrExplain(config.dataDir);
  // Every role, before it takes any work: a wrong key stops here rather than as undecryptable results.
  try {
    if (!verifyKeyCheck(config.dataDir, keyring)) {
      log.warn(
        { dataDir: config.dataDir },
        'no codec-check.json in the data directory: the keys are not checked',
      );
    }
  } catch (err) {
    if (err instanceof KeyringError) throw new UserError(err.message, EXIT.USAGE);
    throw err;
  }
  const dataConverter = bootflowDataConverter(keyring);
  const settings = temporalSettings();
  const connection = await NativeConnection.connect(settings.connectionOptions).catch((err: unknown) => {
    throw new UserError(
      `Cannot reach Temporal at ${settings.address} (${(err as Error).message}); start it with \`npm start\` ` +
        'or set TEMPORAL_ADDRESS',
      EXIT.UNAVAILABLE,
    );
  });
  const client = new Client({ connection, namespace: settings.namespace, dataConverter });
  const db = { ...dbConfigFromEnv(), dataDir: config.dataDir };

  const closers: Array<() => Promise<void>> = [];
  const workers: Array<{ queue: string; worker: Worker }> = [];
  const common: Partial<WorkerOptions> = {
    connection,
    namespace: settings.namespace,
    dataConverter,
    maxConcurrentActivityTaskExecutions: config.maxConcurrentActivities,
    shutdownGraceTime: `${config.shutdownGraceSeconds} seconds`,
    identity: `${process.pid}@${os.hostname()}`,
  };
  const create = async (taskQueue: string, options: Partial<WorkerOptions>) => {
    const worker = await Worker.create({ ...common, taskQueue, ...options } as WorkerOptions);
    workers.push({ queue: taskQueue, worker });
  };

  try {
    let cloud: Cloud | undefined;
    if (config.roles.includes('controller')) {
      // A wrong key would otherwise surface later as workflow tasks that cannot decode their input.
      await verifyKeyringAgainstHistory(client, keyring).catch((err: unknown) => {
        if ((err as Error).name === 'PayloadDecryptionError')
          throw new UserError((err as Error).message, EXIT.USAGE);
        log.warn({ error: (err as Error).message }, 'could not check the keyring against stored history');
      });
      // Workflows upsert these; unregistered, their tasks would fail forever on a fresh cluster.
      const added = await ensureSearchAttributes(connection, settings.namespace);
      if (added.length > 0) log.info({ added }, 'registered the boot search attributes');
      // nova-compute's service credentials: only hosts the bootstrap issued a key to may register.
      const serviceKeys = loadComputeServiceKeys(config.dataDir);
      if (!serviceKeys) {
        throw new UserError(
          `${SERVICE_KEYS_FILE} is missing from ${config.dataDir}: run the bootstrap (npm start, or ` +
            'tsx scripts/bootstrap.ts) to issue the compute hosts their service credentials',
          EXIT.USAGE,
        );
      }
      cloud = await openCloud({ db });
      const opened = cloud;
      closers.push(() => opened.close());
      await create(CONTROLLER_QUEUE, {
        workflowsPath: require.resolve('./workflows/all'),
        activities: {
          ...createControllerActivities(cloud),
          ...createComputeServiceActivities({ ...cloud, serviceKeys }),
          ...createOperatorControllerActivities(cloud),
        },
        maxConcurrentWorkflowTaskExecutions: config.maxConcurrentWorkflowTasks,
        maxCachedWorkflows: config.maxCachedWorkflows,
        maxConcurrentLocalActivityExecutions: config.maxConcurrentLocalActivities,
      });
      // Nova's periodic tasks (build-time check, orphan clean-up): one schedule shared by all controllers.
      await ensureReconcilerSchedule(client).then(
        (how) => {
          if (how === 'created')
            log.info({ scheduleId: RECONCILER_SCHEDULE_ID }, 'registered the reconciler');
        },
        (err: unknown) =>
          log.warn({ error: (err as Error).message }, 'could not register the reconciler schedule'),
      );
    }
    let api: ApiServer | undefined;
    if (config.roles.includes('api')) {
      // nova-api reads the services' databases directly: the controller's cloud, or one of its own.
      let apiCloud = cloud;
      if (!apiCloud) {
        const own = await openCloud({ db });
        closers.push(() => own.close());
        apiCloud = own;
      }
      api = await startApiServer(
        {
          cloud: apiCloud,
          temporal: client,
          publicUrl: config.api.publicUrl,
          region: DEFAULT_REGION,
          log,
          concurrentCreates: config.api.concurrentCreates,
          // The controller's worker is on this client's connection: a boot's first workflow task comes
          // back in the start RPC's answer instead of through a poll (eager workflow start).
          eagerStart: config.roles.includes('controller'),
        },
        {
          host: config.api.host,
          port: config.api.port,
          ...(config.api.tls ? { tls: config.api.tls } : {}),
        },
      ).catch((err: unknown) => {
        throw new UserError(
          `The API cannot listen on ${config.api.host}:${config.api.port} (${(err as Error).message}); ` +
            'choose another with --api-port or BOOTFLOW_API_PORT',
          EXIT.UNAVAILABLE,
        );
      });
      const opened = api;
      closers.push(() => opened.close());
      log.info({ url: api.url, publicUrl: config.api.publicUrl }, 'OpenStack APIs listening');
    }
    if (config.roles.includes('network')) {
      let neutron = cloud?.neutron;
      let keystone = cloud?.keystone;
      if (!neutron || !keystone) {
        // The network node: its own Neutron, and Keystone for token validation (keystonemiddleware).
        const ownNeutron = await Neutron.open({ db });
        closers.push(() => ownNeutron.close());
        const ownKeystone = await Keystone.open({ db });
        closers.push(() => ownKeystone.close());
        neutron = ownNeutron;
        keystone = ownKeystone;
      }
      await create(NETWORK_QUEUE, {
        activities: {
          ...createNetworkActivities({ neutron, identity: keystone }),
          ...createOperatorNetworkActivities({ neutron, identity: keystone }),
        },
        maxConcurrentWorkflowTaskExecutions: 2,
      });
    }
    const computeHosts: Array<{ spec: HostSpec; compute: ComputeHost; serviceKey: Buffer }> = [];
    for (const host of config.hosts) {
      const spec = defaultHostSpec(host);
      const serviceKey = loadHostServiceKey(config.dataDir, host);
      if (!serviceKey) {
        throw new UserError(
          `compute host ${host} has no service credential (hosts/${host}/service-key): issue one with ` +
            `\`tsx scripts/bootstrap.ts --compute-host ${host}\` (the controller refuses hosts without one)`,
          EXIT.USAGE,
        );
      }
      const compute = await openComputeHost({
        dataDir: config.dataDir,
        host,
        capabilities: capabilitiesOf(spec),
        networkAgent: config.networkAgent,
        driver: config.virtDriver,
      });
      if (compute.reapedAtStart.length > 0)
        log.warn(
          { host, instances: compute.reapedAtStart },
          'init_host: killed stray guests of unknown instances',
        );
      closers.push(() => compute.close());
      computeHosts.push({ spec, compute, serviceKey });
      await create(computeQueue(host), {
        activities: createComputeActivities(compute),
        maxConcurrentWorkflowTaskExecutions: 2,
      });
    }

    // The API alone has no worker to run: it counts as running until shutdown closes it.
    let apiStopped: () => void = () => undefined;
    const apiRun = new Promise<void>((resolve) => (apiStopped = resolve));
    const runs = [...workers.map(({ worker }) => worker.run()), ...(api ? [apiRun] : [])];
    log.info(
      { queues: workers.map((w) => w.queue), address: settings.address, namespace: settings.namespace },
      'workers running',
    );

    // nova-compute's report_state, through Temporal: register once, then a heartbeat signal every few seconds.
    // Each message carries the host's MAC (its service credential), which the controller checks.
    const announce = async (spec: HostSpec, serviceKey: Buffer, signal: 'register' | 'heartbeat') => {
      const workflowId = computeServiceWorkflowId(spec.host);
      const input: ComputeServiceInput = { spec, powerSyncIntervalMs: config.powerSyncSeconds * 1000 };
      const common = { workflowId, taskQueue: CONTROLLER_QUEUE, args: [input] as [ComputeServiceInput] };
      const proof = signServiceMessage(serviceKey, spec.host, signal, Date.now());
      if (signal === 'register') {
        await client.workflow.signalWithStart(computeService, {
          ...common,
          signal: registerSignal,
          signalArgs: [{ ...spec, proof }],
        });
      } else {
        await client.workflow.signalWithStart(computeService, {
          ...common,
          signal: heartbeatSignal,
          signalArgs: [proof],
        });
      }
    };
    const timers: NodeJS.Timeout[] = [];
    for (const { spec, serviceKey } of computeHosts) {
      await announce(spec, serviceKey, 'register');
      // init_host's _destroy_evacuated_instances: guests evacuated while this host was down are destroyed
      // here, on the controller's word (the host never reads the controller's database).
      await client.workflow
        .start('destroyEvacuatedInstances', {
          taskQueue: CONTROLLER_QUEUE,
          workflowId: destroyEvacuatedWorkflowId(spec.host),
          args: [{ host: spec.host }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        })
        .catch((err: unknown) =>
          log.warn(
            { host: spec.host, error: (err as Error).message },
            'init_host: evacuated-guest check not started',
          ),
        );
      log.info(
        { host: spec.host, workflowId: computeServiceWorkflowId(spec.host) },
        'compute service announced',
      );
      const timer = setInterval(() => {
        announce(spec, serviceKey, 'heartbeat').catch((err: unknown) =>
          log.warn({ host: spec.host, error: (err as Error).message }, 'compute service heartbeat not sent'),
        );
      }, config.heartbeatSeconds * 1000);
      timers.push(timer);
    }
    process.send?.({ type: 'ready', queues: workers.map((w) => w.queue), ...(api ? { api: api.url } : {}) });

    let stopping: Promise<void> | undefined;
    const finished = Promise.allSettled(runs);
    const shutdown = (reason: string) => {
      stopping ??= (async () => {
        log.info({ reason }, 'shutting down: heartbeats stop, in-flight activities get the grace time');
        timers.forEach(clearInterval);
        // The API stops taking requests first; requests in flight finish (Fastify's close waits for them).
        if (api) await api.close().catch(() => undefined);
        apiStopped();
        for (const { worker } of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
        const results = await finished;
        for (const closer of closers.reverse()) await closer().catch(() => undefined);
        await connection.close().catch(() => undefined);
        const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed.length > 0) throw failed[0]!.reason;
        log.info('workers stopped');
      })();
      return stopping;
    };
    // A worker that stops on its own (fatal error) takes the process down cleanly too.
    void Promise.race(runs)
      .then(
        () => shutdown('a worker stopped'),
        () => shutdown('a worker failed'),
      )
      .catch(() => undefined);
    return { done: finished.then(() => stopping).then(() => undefined), shutdown };
  } catch (err) {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
    await connection.close().catch(() => undefined);
    throw err;
  }
}

async function main(): Promise<number> {
  usePrivateUmask();
  let config: WorkerConfig;
  try {
    config = parseWorkerArgs(process.argv);
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`worker: ${err.message}\n`);
      return err.exitCode;
    }
    const code = (err as { exitCode?: number }).exitCode;
    return code === 0 ? EXIT.OK : EXIT.USAGE;
  }
  let running: RunningWorkers;
  try {
    running = await startWorkers(config);
  } catch (err) {
    if (err instanceof UserError) {
      process.stderr.write(`worker: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void running.shutdown(signal).catch(() => undefined));
  }
  try {
    await running.done;
    return EXIT.OK;
  } catch (err) {
    process.stderr.write(`worker: ${(err as Error).message}\n`);
    return EXIT.FAILED;
  }
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(
        `worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(EXIT.FAILED);
    },
  );
}
