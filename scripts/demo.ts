/**
 * `npm start`: the whole of bootflow on one machine, until Ctrl-C.
 *
 *   0. the virt driver: qemu (real guests, with the linux-bridge agent) when QEMU is installed or can be
 *      installed (root with apt-get) and the guest image builds, else fake, saying which and why
 *   1. the data directory: payload-encryption key and the embedded cloud (DevStack-style, idempotent)
 *   2. Temporal: the dev server with its Web UI (persisted to $BOOTFLOW_DATA/temporal.db, search attributes
 *      registered, a codec server so the UI shows decrypted payloads), or the service at TEMPORAL_ADDRESS
 *   3. the workers of the three-node layout as separate processes: controller, network, compute1..3
 *   4. one server booted through client.ts with live progress (bootflow-guest on qemu, cirros on fake), the
 *      Web UI link to its workflow and, for a real guest, how to reach it (console, address)
 *
 * Settings: BOOTFLOW_DATA (./data), TEMPORAL_PORT (7233), TEMPORAL_UI_PORT (8233), TEMPORAL_ADDRESS (use an
 * existing Temporal instead), BOOTFLOW_CODEC_PORT (free port), BOOTFLOW_DEMO_WORKERS=single (one worker
 * process with --role all), BOOTFLOW_DEMO_BOOT=0 (no first boot), BOOTFLOW_VIRT_DRIVER=fake (no real guest).
 * Worker logs go to $BOOTFLOW_DATA/logs/.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { GUEST_IMAGE_NAME, IMAGE_NAME } from '../cloud/bootstrap';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import {
  ensureGuestImage,
  GUEST_PACKAGES,
  INSTALL_COMMAND,
  missingGuestTools,
  onPath,
  type GuestImage,
} from '../lib/guest-image';
import { startCodecServer, type RunningCodecServer } from '../lib/codec';
import { holdPorts, startDevServer, type RunningDevServer } from '../lib/dev-server';
import { createLogger } from '../lib/logger';
import { waitForComputeHosts } from '../lib/cli/compute-services';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/cli/temporal';
import { PROJECT_ROOT } from '../lib/temporal-binaries';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import { prepareDataDir } from './bootstrap';

const KEYWORD = 2; // temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
const READY_TIMEOUT_MS = 240_000;

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

interface ChildWorker {
  name: string;
  log: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

function tsxArgs(script: string, args: string[]): string[] {
  return ['--import', 'tsx', path.join(PROJECT_ROOT, script), ...args];
}

function spawnWorker(name: string, args: string[], env: NodeJS.ProcessEnv, logsDir: string): ChildWorker {
  const log = path.join(logsDir, `${name}.log`);
  const fd = openSync(log, 'a');
  const child = spawn(process.execPath, tsxArgs('worker.ts', args), {
    cwd: PROJECT_ROOT,
    env,
    stdio: ['ignore', fd, fd, 'ipc'],
  });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { name, log, child, exited };
}

function whenReady(worker: ChildWorker): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`worker ${worker.name} not ready after ${READY_TIMEOUT_MS / 1000} s; see ${worker.log}`),
        ),
      READY_TIMEOUT_MS,
    );
    worker.child.on('message', (message: { type?: string }) => {
      if (message?.type === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    void worker.exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker ${worker.name} exited with code ${code}:\n${tail(worker.log)}`));
    });
  });
}

async function ensureSearchAttributes(client: Client, namespace: string): Promise<void> {
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.keys(BOOT_SEARCH_ATTRIBUTES).filter((name) => !known.has(name));
  if (missing.length === 0) return;
  await client.connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((name) => [name, KEYWORD])),
  });
}

const run = promisify(execFile);

/**
 * Real guests when this machine can run them: the qemu driver (with the linux-bridge agent, so the guest
 * gets its address by DHCP) if QEMU and the guest image's tools are there, installing the Debian packages
 * first when running as root with apt-get; otherwise the fake driver, saying why. BOOTFLOW_VIRT_DRIVER=fake
 * keeps the fake driver.
 */
async function chooseVirtDriver(): Promise<GuestImage | undefined> {
  if (process.env.BOOTFLOW_VIRT_DRIVER === 'fake') {
    say('• virt driver: fake (BOOTFLOW_VIRT_DRIVER=fake): no guest runs');
    return undefined;
  }
  const root = process.getuid?.() === 0;
  let missing = await missingGuestTools();
  if (missing.length > 0 && root && (await onPath('apt-get'))) {
    say(`• installing the Debian packages for real guests: ${GUEST_PACKAGES.join(' ')}`);
    const install = ['install', '-y', '-q', '--no-install-recommends', ...GUEST_PACKAGES];
    await run('apt-get', install, { maxBuffer: 64 << 20 })
      .catch(async () => {
        await run('apt-get', ['update', '-q'], { maxBuffer: 64 << 20 });
        await run('apt-get', install, { maxBuffer: 64 << 20 });
      })
      .catch((err: unknown) => say(`  (apt-get failed: ${(err as Error).message.split('\n')[0]})`));
    missing = await missingGuestTools();
  }
  if (missing.length > 0) {
    say(`• virt driver: fake — real guests need ${missing.join(', ')}; install them with:`);
    say(`    ${root ? '' : 'sudo '}${INSTALL_COMMAND}`);
    return undefined;
  }
  if (!root) {
    say('• virt driver: fake — real guests need root (taps, bridges, network namespaces)');
    return undefined;
  }
  try {
    say('• building the guest image (Debian cloud kernel + busybox initramfs; cached)');
    const guest = await ensureGuestImage();
    say(`• virt driver: qemu (software emulation), network agent: linux-bridge — guest ${guest.build}`);
    return guest;
  } catch (err) {
    say(`• virt driver: fake — the guest image could not be built: ${(err as Error).message}`);
    return undefined;
  }
}

/** The booted guest's console and address, for the summary. */
async function howToReach(env: NodeJS.ProcessEnv, name: string, networkId: string): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    tsxArgs('client.ts', ['-f', 'json', 'server', 'show', name]),
    { cwd: PROJECT_ROOT, env: { ...env, LOG_FORMAT: undefined } },
  ).catch(() => ({ stdout: '{}' }));
  const server = JSON.parse(stdout || '{}') as { addresses?: Record<string, Array<{ addr: string }>> };
  const ip = server.addresses?.private?.[0]?.addr;
  return [
    `  Its console   npm run client -- server console-log ${name} --lines 20`,
    ...(ip ? [`  Its address   ${ip}: ip netns exec qdhcp-${networkId} busybox ping -c 3 ${ip}`] : []),
  ];
}

async function main(): Promise<number> {
  const dataDir = path.resolve(process.env.BOOTFLOW_DATA ?? 'data');
  const logsDir = path.join(dataDir, 'logs');
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

  let devServer: RunningDevServer | undefined;
  let codecServer: RunningCodecServer | undefined;
  const workers: ChildWorker[] = [];
  let stopping = false;
  const stopAll = async () => {
    stopping = true;
    for (const w of workers)
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
    await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(20_000)]);
    for (const w of workers)
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await devServer?.stop();
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
      codecServer = await startCodecServer({
        keyring,
        port: Number(process.env.BOOTFLOW_CODEC_PORT ?? 0),
        allowedOrigins: [`http://localhost:${uiPort}`, `http://127.0.0.1:${uiPort}`],
        logger: quietLog,
      });
      await held?.release();
      say(
        `• starting the Temporal dev server on 127.0.0.1:${port}, Web UI on ${uiPort} (log: logs/temporal.log)`,
      );
      devServer = await startDevServer({
        dataDir,
        port,
        uiPort,
        searchAttributes: BOOT_SEARCH_ATTRIBUTES,
        uiCodecEndpoint: codecServer.url,
        output: { file: path.join(logsDir, 'temporal.log') },
      });
      address = devServer.address;
      uiBase = `http://localhost:${uiPort}`;
    }
    const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
    const connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace, dataConverter: bootflowDataConverter(keyring) });
    try {
      await ensureSearchAttributes(client, namespace).catch((err: unknown) =>
        say(`  (could not register the search attributes: ${(err as Error).message})`),
      );

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
              ['controller', ['--role', 'controller']],
              ['network', ['--role', 'network']],
              ...hosts.map((h): [string, string[]] => [h, ['--role', 'compute', '--host', h]]),
            ];
      say(`• starting workers: ${layout.map(([name]) => name).join(', ')} (logs: logs/<name>.log)`);
      for (const [name, args] of layout) workers.push(spawnWorker(name, args, env, logsDir));
      await Promise.all(workers.map(whenReady));
      say('• waiting for the compute hosts to register through the controller');
      await waitForComputeHosts(client, hosts, 120_000);
      for (const w of workers) {
        void w.exited.then((code) => {
          if (!stopping) say(`! worker ${w.name} exited (code ${code}); see ${w.log}`);
        });
      }

      let bootLink: string | null = null;
      let reach: string[] = [];
      if (process.env.BOOTFLOW_DEMO_BOOT !== '0') {
        const name = `demo-${new Date().toISOString().slice(11, 19).replaceAll(':', '')}`;
        const args = ['server', 'create', '--flavor', 'm1.tiny', '--image', image, '--network', 'private'];
        say(`• booting ${name} through client.ts: bootflow ${args.join(' ')} --wait ${name}`);
        say();
        const boot = spawn(process.execPath, tsxArgs('client.ts', [...args, '--wait', name]), {
          cwd: PROJECT_ROOT,
          env: { ...env, LOG_FORMAT: undefined },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        boot.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString();
          process.stdout.write(chunk);
        });
        const code = await new Promise<number | null>((resolve) => boot.once('exit', resolve));
        bootLink = /Web UI: (\S+)/.exec(out)?.[1] ?? null;
        if (code !== 0)
          say(`! the demo boot did not reach ACTIVE (exit ${code}); the workers' logs are in ${logsDir}`);
        else if (guest) reach = await howToReach(env, name, prepared.cloud.privateNetworkId);
      }

      say();
      say('bootflow is running.');
      if (uiBase) say(`  Web UI        ${uiBase}/namespaces/${namespace}/workflows`);
      if (bootLink) say(`  This boot     ${bootLink}`);
      for (const line of reach) say(line);
      say(`  Temporal      ${address} (namespace ${namespace})`);
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
    await stopAll();
    throw err;
  }

  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  say('\nstopping: workers finish their activities, then the Temporal dev server stops');
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
