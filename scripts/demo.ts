/**
 * `npm start`: the whole of bootflow on one machine, until Ctrl-C.
 *
 *   0. the virt driver: qemu (real guests, with the linux-bridge agent) when QEMU is installed or can be
 *      installed (root with apt-get) and the guest image builds, else fake, saying which and why
 *   1. the data directory: payload-encryption key and the embedded cloud (DevStack-style, idempotent)
 *   2. Temporal: the dev server with its Web UI (persisted to $BOOTFLOW_DATA/temporal.db, search attributes
 *      registered, a codec server so the UI shows decrypted payloads), or the service at TEMPORAL_ADDRESS
 *   3. the workers of the three-node layout as separate processes: controller (with the OpenStack API
 *      role), network, compute1..3
 *   4. one server booted through client.ts with live progress (bootflow-guest on qemu, cirros on fake), the
 *      Web UI link to its workflow and, for a real guest, how to reach it (console, address)
 *
 * Settings: BOOTFLOW_DATA (./data), TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233), TEMPORAL_ADDRESS (use an
 * existing Temporal instead), BOOTFLOW_CODEC_PORT (free port), BOOTFLOW_DEMO_WORKERS=single (one worker
 * process with --role all), BOOTFLOW_DEMO_BOOT=0 (no first boot), BOOTFLOW_API_PORT (8770) and
 * BOOTFLOW_PUBLIC_URL for the API role, BOOTFLOW_VIRT_DRIVER=fake (no real guest). Worker logs go to
 * $BOOTFLOW_DATA/logs/.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { GUEST_IMAGE_NAME, IMAGE_NAME } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { ensureGuestImage, missingGuestTools, onPath, type GuestImage } from '../lib/guest-image';
import { chooseVirtDriver as chooseDriver } from '../lib/guest-image/driver-choice';
import { loadCodecToken, startCodecServer, type RunningCodecServer } from '../lib/codec';
import { holdPorts, startDevServer, type RunningDevServer } from '../lib/dev-server';
import { createLogger } from '../lib/logger';
import { waitForComputeHosts } from '../lib/command-line/compute-services';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { describeExit, scriptArgs, startScript, whenReady, type ScriptProcess } from '../lib/processes';
import { ensureSearchAttributes } from '../lib/search-attributes';
import { PROJECT_ROOT } from '../lib/temporal-binaries';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { prepareDataDir } from './bootstrap';
import { apiSettings } from '../api/settings';
import { ensurePrivateDir, usePrivateUmask } from '../lib/file-modes';

const READY_TIMEOUT_MS = 240_000;
/** A dev server that keeps dying has a reason (disk full, a broken store) that restarts will not fix. */
const MAX_DEV_SERVER_RESTARTS = 3;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** Thrown when a stop signal arrives while the demo is still starting. */
class StopRequested extends Error {}

const run = promisify(execFile);

/**
 * Real guests when this machine can run them (lib/guest-image/driver-choice.ts), on this machine: its
 * tools, apt-get (an update and a second try when the first install fails) and the guest image build.
 */
function chooseVirtDriver(): Promise<GuestImage | undefined> {
  const apt = (args: string[]) => run('apt-get', args, { maxBuffer: 64 << 20 });
  return chooseDriver({
    env: process.env,
    isRoot: process.getuid?.() === 0,
    missingTools: () => missingGuestTools(),
    hasAptGet: () => onPath('apt-get'),
    async aptInstall(packages) {
      const install = ['install', '-y', '-q', '--no-install-recommends', ...packages];
      await apt(install).catch(async () => {
        await apt(['update', '-q']);
        await apt(install);
      });
    },
    buildImage: () => ensureGuestImage(),
    say,
  });
}

/** The booted guest's console and address, for the summary. */
async function howToReach(env: NodeJS.ProcessEnv, name: string, networkId: string): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    scriptArgs('client.ts', ['-f', 'json', 'server', 'show', name]),
    { cwd: PROJECT_ROOT, env: { ...env, LOG_FORMAT: undefined } },
  ).catch(() => ({ stdout: '{}' }));
  const server = JSON.parse(stdout || '{}') as { addresses?: Record<string, Array<{ addr: string }>> };
  const ip = server.addresses?.private?.[0]?.addr;
  return [
    `  Its console   npm run client -- server console-log ${name} --lines 20`,
    ...(ip ? [`  Its address   ${ip}: ip netns exec qdhcp-${networkId} busybox ping -c 3 ${ip}`] : []),
  ];
}

/** The codec server as the browser reaches it: on localhost, the Web UI's host. */
function codecUiEndpoint(codec: RunningCodecServer): string {
  return `http://localhost:${codec.port}`;
}

async function main(): Promise<number> {
  const dataDir = path.resolve(process.env.BOOTFLOW_DATA ?? 'data');
  const logsDir = path.join(dataDir, 'logs');
  usePrivateUmask();
  ensurePrivateDir(dataDir);
  mkdirSync(logsDir, { recursive: true });
  const quietLog = createLogger({
    name: 'demo',
    destination: pino.destination(path.join(logsDir, 'demo.log')),
  });
  const port = Number(process.env.TEMPORAL_PORT ?? 7233);
  const uiPort = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
  const hosts = DEFAULT_HOSTS.map((h) => h.host);

  say(`bootflow demo — data directory ${dataDir}`);
  const guest = await chooseVirtDriver();
  say('• bootstrapping the embedded cloud (keys, projects, users, flavors, images, networks)');
  const prepared = await prepareDataDir(dataDir, process.env, guest ? { guestImage: guest } : {});
  const image = guest ? GUEST_IMAGE_NAME : IMAGE_NAME;
  const keyring = loadKeyringOrExplain(dataDir);

  let devServer: Promise<RunningDevServer> | undefined;
  let codecServer: RunningCodecServer | undefined;
  const workers: ScriptProcess[] = [];
  let stopping = false;
  // SIGINT (Ctrl-C), SIGTERM (timeout, systemd, a container runtime, npm passing one on) or SIGHUP, at any
  // time, even while starting: everything this demo started goes down with it.
  const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
    for (const signal of STOP_SIGNALS) process.once(signal, () => resolve(signal));
  });
  const step = <T>(work: Promise<T>): Promise<T> =>
    Promise.race([
      work,
      stopSignal.then((signal): never => {
        throw new StopRequested(signal);
      }),
    ]);
  const stopAll = async () => {
    stopping = true;
    for (const w of workers) if (w.running()) w.child.kill('SIGTERM');
    await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(20_000)]);
    for (const w of workers) if (w.running()) w.child.kill('SIGKILL');
    await (await devServer?.catch(() => undefined))?.stop();
    await codecServer?.close().catch(() => undefined);
  };

  try {
    let address: string;
    let uiBase: string | null;
    if (process.env.TEMPORAL_ADDRESS) {
      address = process.env.TEMPORAL_ADDRESS;
      uiBase = process.env.BOOTFLOW_UI_URL ?? null;
      say(`• using the Temporal service at ${address} (TEMPORAL_ADDRESS)`);
    } else {
      // The dev server's ports are held while the codec server takes one of its own, so it is not handed
      // one of them; a port that cannot be held is taken, and startDevServer says so plainly below.
      const held = await holdPorts([port, uiPort]).catch(() => undefined);
      codecServer = await step(
        startCodecServer({
          keyring,
          bearerToken: loadCodecToken(dataDir),
          port: Number(process.env.BOOTFLOW_CODEC_PORT ?? 0),
          allowedOrigins: [`http://localhost:${uiPort}`, `http://127.0.0.1:${uiPort}`],
          uiUrl: `http://localhost:${uiPort}/namespaces/default/workflows`,
          logger: quietLog,
        }),
      );
      await held?.release();
      say(
        `• starting the Temporal dev server on 127.0.0.1:${port}, Web UI on ${uiPort} (log: logs/temporal.log)`,
      );
      const devServerOptions = {
        dataDir,
        port,
        uiPort,
        searchAttributes: BOOT_SEARCH_ATTRIBUTES,
        // localhost, as the Web UI's link: the codec's SameSite=Strict cookie then goes with the UI's calls.
        uiCodecEndpoint: codecUiEndpoint(codecServer),
        output: { file: path.join(logsDir, 'temporal.log') },
      };
      devServer = startDevServer(devServerOptions);
      const started = await step(devServer);
      address = started.address;
      // A dev server that dies (kill -9, OOM) is said at once and started again on the same SQLite file:
      // workers and `--wait` clients reconnect to it and every workflow goes on where it was.
      const watch = (server: RunningDevServer, restarts: number): void => {
        server.process.once('exit', (code, signal) => {
          if (stopping) return;
          const how = signal ? `killed by ${signal}` : `exit ${code}`;
          say(`! the Temporal dev server died (${how}); see ${path.join(logsDir, 'temporal.log')}`);
          if (restarts >= MAX_DEV_SERVER_RESTARTS) {
            say('  not restarting it again: workers and clients wait for Temporal until it is back');
            return;
          }
          say(`  restarting it on ${address} with the same data (temporal.db): workflows go on`);
          devServer = startDevServer(devServerOptions);
          devServer.then(
            (again) => {
              if (stopping) return void again.stop();
              say(`• the Temporal dev server is back on ${address}`);
              watch(again, restarts + 1);
            },
            (err: unknown) => say(`! the Temporal dev server did not restart: ${(err as Error).message}`),
          );
        });
      };
      watch(started, 0);
      uiBase = `http://localhost:${uiPort}`;
    }
    const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
    const connection = await step(Connection.connect({ address }));
    const client = new Client({ connection, namespace, dataConverter: bootflowDataConverter(keyring) });
    try {
      await step(ensureSearchAttributes(connection, namespace)).catch((err: unknown) => {
        if (err instanceof StopRequested) throw err;
        say(`  (could not register the search attributes: ${(err as Error).message})`);
      });

      const env: NodeJS.ProcessEnv = {
        ...process.env,
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: namespace,
        BOOTFLOW_DATA: dataDir,
        LOG_FORMAT: 'json',
        ...(uiBase ? { BOOTFLOW_UI_URL: uiBase } : {}),
        BOOTFLOW_VIRT_DRIVER: guest ? 'qemu' : 'fake',
        ...(guest ? { BOOTFLOW_NETWORK_AGENT: 'linux-bridge' } : {}),
      };
      const layout: Array<[string, string[]]> =
        process.env.BOOTFLOW_DEMO_WORKERS === 'single'
          ? [['worker-all', ['--role', 'all']]]
          : [
              // The API role beside the controller, as DevStack runs nova-api on the controller node.
              ['controller', ['--role', 'controller,api']],
              ['network', ['--role', 'network']],
              ...hosts.map((h): [string, string[]] => [h, ['--role', 'compute', '--host', h]]),
            ];
      say(`• starting workers: ${layout.map(([name]) => name).join(', ')} (logs: logs/<name>.log)`);
      for (const [name, args] of layout) {
        const log = path.join(logsDir, `${name}.log`);
        workers.push(startScript({ name: `worker ${name}`, script: 'worker.ts', args, env, log }));
      }
      await step(Promise.all(workers.map((w) => whenReady(w, READY_TIMEOUT_MS))));
      say('• waiting for the compute hosts to register through the controller');
      await step(waitForComputeHosts(client, hosts, 120_000));
      for (const w of workers) {
        void w.exited.then((exit) => {
          if (!stopping) say(`! ${w.name} exited (${describeExit(exit)}); see ${w.log}`);
        });
      }

      let bootLink: string | null = null;
      let reach: string[] = [];
      if (process.env.BOOTFLOW_DEMO_BOOT !== '0') {
        const name = `demo-${new Date().toISOString().slice(11, 19).replaceAll(':', '')}`;
        const args = ['server', 'create', '--flavor', 'm1.tiny', '--image', image, '--network', 'private'];
        say(`• booting ${name} through client.ts: bootflow ${args.join(' ')} --wait ${name}`);
        say();
        const boot = spawn(process.execPath, scriptArgs('client.ts', [...args, '--wait', name]), {
          cwd: PROJECT_ROOT,
          env: { ...env, LOG_FORMAT: undefined },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        boot.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          process.stdout.write(chunk);
        });
        const exited = new Promise<number | null>((resolve) => boot.once('exit', resolve));
        const code = await step(exited).catch((err: unknown) => {
          boot.kill('SIGTERM');
          throw err;
        });
        bootLink = /Web UI: (\S+)/.exec(out)?.[1] ?? null;
        if (code !== 0)
          say(`! the demo boot did not reach ACTIVE (exit ${code}); the workers' logs are in ${logsDir}`);
        else if (guest) reach = await howToReach(env, name, prepared.cloud.privateNetworkId);
      }

      say();
      say('bootflow is running.');
      if (uiBase) say(`  Web UI        ${uiBase}/namespaces/${namespace}/workflows`);
      if (codecServer) {
        say(
          `  Decrypted     open ${codecUiEndpoint(codecServer)}/login?token=$(cat ${prepared.codecTokenFile})`,
        );
        say('                once, then Web UI Settings > Codec Server: "Include cross-origin credentials"');
      }
      if (bootLink) say(`  This boot     ${bootLink}`);
      for (const line of reach) say(line);
      say(`  Temporal      ${address} (namespace ${namespace})`);
      say(
        `  OpenStack API ${apiSettings({}, env).publicUrl} (Keystone at /identity, Nova at /compute/v2.1, ...)`,
      );
      say(`  Workers       ${layout.map(([n]) => n).join(', ')} — logs in ${logsDir}`);
      say(
        `  Credentials   ${prepared.cloud.demo.openrcPath} (demo), ${prepared.cloud.admin.openrcPath} (admin)`,
      );
      say('  In another terminal:');
      const exports: string[] = [];
      if (address !== '127.0.0.1:7233' && address !== 'localhost:7233')
        exports.push(`TEMPORAL_ADDRESS=${address}`);
      if (uiPort !== 8233 && !process.env.TEMPORAL_ADDRESS) exports.push(`TEMPORAL_UI_PORT=${uiPort}`);
      if (dataDir !== path.join(PROJECT_ROOT, 'data')) exports.push(`BOOTFLOW_DATA=${dataDir}`);
      if (exports.length > 0) say(`    export ${exports.join(' ')}`);
      say(
        `    source ${prepared.cloud.demo.openrcPath} && openstack server list   (scripts/setup-openstack-clients.sh)`,
      );
      say('    npm run client -- server list');
      say(
        `    npm run client -- server create --flavor m1.tiny --image ${image} --network private --wait vm2`,
      );
      say('    npm run client -- hypervisor list');
      say('  Ctrl-C stops everything.');
    } finally {
      await connection.close();
    }
  } catch (err) {
    if (err instanceof StopRequested) say(`\n${err.message} while starting: stopping what was started`);
    await stopAll();
    if (err instanceof StopRequested) return 0;
    throw err;
  }

  const signal = await stopSignal;
  say(`\n${signal}: stopping; workers finish their activities, then the Temporal dev server stops`);
  if (guest)
    say(
      "  (real guests keep running, as Nova's do when nova-compute stops; the next npm start manages them)",
    );
  await stopAll();
  say('stopped.');
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
