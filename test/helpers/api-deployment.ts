/**
 * A running bootflow for API scenario tests: a bootstrapped data directory, a Temporal dev server and one
 * worker process with every role (controller, network, compute1..3 and the API) on free ports, and the
 * openrc environments the real clients use. With `computeWorkers`, those hosts run as their own
 * `--role compute --host <host>` processes (they can be killed and restarted one by one), and the main
 * worker runs the controller, network and API roles with the other hosts. Close it in `after`: it stops the worker, the dev server and
 * removes the data directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { openrcPath } from '../../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../../cloud/hosts';
import { waitForComputeHosts } from '../../lib/command-line/compute-services';
import { bootflowDataConverter, loadKeyringOrExplain } from '../../lib/command-line/temporal';
import {
  reservePorts,
  startDevServer,
  startDevServerOnFreePorts,
  type RunningDevServer,
} from '../../lib/dev-server';
import { prepareDataDir, type PreparedData } from '../../scripts/bootstrap';
import { BOOT_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { deploymentEnv, startScript, stopChild, workerReady, type ChildHandle } from './deployment';
import { openrcEnv } from './openstack-cli';

export interface ApiDeployment {
  dataDir: string;
  /** The API's public base URL, e.g. http://127.0.0.1:41234. */
  apiUrl: string;
  prepared: PreparedData;
  /** `source admin-openrc.sh` / `demo-openrc.sh`, for the `openstack` CLI and openstacksdk. */
  adminEnv: NodeJS.ProcessEnv;
  demoEnv: NodeJS.ProcessEnv;
  /** The environment of bootflow's own processes (client.ts), pointing at this deployment's Temporal. */
  env: NodeJS.ProcessEnv;
  temporalAddress: string;
  worker: ChildHandle;
  /** The `computeWorkers` processes by host (the latest of each). */
  computes: Map<string, ChildHandle>;
  /** Starts a host's compute worker again (after a kill) and waits for its "ready". */
  startCompute(host: string): Promise<ChildHandle>;
  /** kill -9 of the Temporal dev server (resolves once it is gone). */
  killTemporal(): Promise<void>;
  /** Starts the dev server again on the same port and the same SQLite file. */
  restartTemporal(): Promise<void>;
  close(): Promise<void>;
}

/** `options.dataDir`: a directory bootflow creates itself (a test of what it creates); default a fresh one. */
export async function startApiDeployment(
  label: string,
  options: { dataDir?: string; computeWorkers?: string[] } = {},
): Promise<ApiDeployment> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), `bootflow-${label}-`));
  const separate = options.computeWorkers ?? [];
  const allHosts = DEFAULT_HOSTS.map((h) => h.host);
  const inMain = allHosts.filter((h) => !separate.includes(h));
  let server: RunningDevServer | undefined;
  let worker: ChildHandle | undefined;
  const computes = new Map<string, ChildHandle>();
  const started: ChildHandle[] = [];
  const close = async () => {
    for (const child of started) if (child.running()) await stopChild(child, 'SIGTERM', 30_000);
    if (worker) await stopChild(worker, 'SIGTERM', 30_000);
    await server?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const reserved = await reservePorts(1);
    const [apiPort] = reserved.ports as [number];
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const env = deploymentEnv({ BOOTFLOW_DATA: dataDir, BOOTFLOW_API_PORT: String(apiPort) });
    const prepared = await prepareDataDir(dataDir, env);
    await reserved.release();
    const devServerOptions = {
      dataDir,
      searchAttributes: BOOT_SEARCH_ATTRIBUTES,
      output: { file: path.join(dataDir, 'temporal.log') },
    };
    server = await startDevServerOnFreePorts(devServerOptions);
    const running = server;
    // A restart comes back on the same ports: the workers and the API keep the address they were given.
    const [port, uiPort] = [server.address, server.uiUrl].map((url) => Number(url.split(':').pop()));
    const workerEnv = { ...env, TEMPORAL_ADDRESS: server.address };
    const mainRoles =
      separate.length === 0
        ? ['--role', 'all']
        : [
            '--role',
            ['controller', 'network', 'api', ...(inMain.length > 0 ? ['compute'] : [])].join(','),
            ...(inMain.length > 0 ? ['--host', inMain.join(',')] : []),
          ];
    worker = startScript('worker.ts', mainRoles, workerEnv, path.join(dataDir, 'worker.log'), { ipc: true });
    await workerReady(worker);
    const startCompute = async (host: string) => {
      const log = path.join(dataDir, `worker-${host}-${started.length}.log`);
      const child = startScript('worker.ts', ['--role', 'compute', '--host', host], workerEnv, log, {
        ipc: true,
      });
      started.push(child);
      computes.set(host, child);
      await workerReady(child);
      return child;
    };
    for (const host of separate) await startCompute(host);
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({
        connection,
        dataConverter: bootflowDataConverter(loadKeyringOrExplain(dataDir)),
      });
      await waitForComputeHosts(client, [...inMain, ...separate], 120_000);
    } finally {
      await connection.close();
    }
    return {
      dataDir,
      apiUrl,
      prepared,
      adminEnv: openrcEnv(openrcPath(dataDir, 'admin')),
      demoEnv: openrcEnv(openrcPath(dataDir, 'demo')),
      env: workerEnv,
      temporalAddress: server.address,
      worker,
      computes,
      startCompute,
      async killTemporal() {
        const current = server ?? running;
        const gone = new Promise((resolve) => current.process.once('exit', resolve));
        current.process.kill('SIGKILL');
        await gone;
      },
      async restartTemporal() {
        server = await startDevServer({ ...devServerOptions, port, uiPort });
      },
      close,
    };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}
