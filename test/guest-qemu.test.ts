/**
 * Real guests (root; never skipped: a missing QEMU, tool or tun device FAILS the suite with what to
 * install). worker.ts processes on a real dev server: controller+network, and compute1 with the qemu virt
 * driver and the linux-bridge network agent. The bootflow guest (built from Debian packages, cached) boots
 * through createInstance:
 *   - ACTIVE; its serial console shows the MAC and IP that Neutron's IPAM gave its port (read through the
 *     getConsoleOutput workflow, the client's `server console-log` and `openstack console log show`, the
 *     API's os-getConsoleOutput) with the network's MTU applied;
 *     ping from qdhcp-<net> reaches it and its HTTP page names the instance;
 *   - a second guest on the network: each pings the other from inside (the guest's /cgi-bin/ping);
 *   - stop/start and SOFT/HARD reboot through their workflows change the real power state (QMP, the QEMU
 *     process);
 *   - kill -9 of the compute worker leaves the guest running; a new worker manages it, and its init_host
 *     kills a stray guest whose instance directory is gone;
 *   - delete leaves no QEMU process, tap, instance directory or audit finding; the network (its last port
 *     gone) stays served, as Neutron's DHCP agent keeps it: qdhcp namespace, bridge and dnsmasq, no lines;
 *   - the host's periodic power-state sync: a guest that went off without Nova asking is STOPPED in Nova.
 * At most two QEMU processes at once; everything this run started is removed in `after`, even on failure.
 */
import { Keystone } from '../cloud/keystone';
import { grantingInterceptor } from './helpers/grants';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { GUEST_IMAGE_NAME, readOpenrc } from '../cloud/bootstrap';
import { ComputeHost, listQemuProcesses, POWER_STATE, deviceNames } from '../cloud/compute';
import { bridgeName, DhcpServer, listHostDevices } from '../cloud/compute/linux-bridge';
import { removeCloudFromMachine } from '../cloud/compute/machine-cleanup';
import { queryStatus } from '../cloud/compute/qmp';
import { hostDirOf } from '../cloud/index';
import { defaultHostSpec, capabilitiesOf } from '../cloud/hosts';
import { freePort, startDevServerOnFreePorts, type RunningDevServer } from '../lib/dev-server';
import { ensureGuestImage, INSTALL_COMMAND, missingGuestTools } from '../lib/guest-image';
import { pollUntil } from '../lib/poll';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { prepareDataDir } from '../scripts/bootstrap';
import { computeServiceWorkflowId, type ComputeServiceState } from '../workflows/compute-service';
import type { ConsoleOutput } from '../workflows/console-output';
import { bootWorkflowId, CONTROLLER_QUEUE, serverOperationWorkflowId } from '../workflows/names';
import type { LeakFinding, ServerView } from '../workflows/operator-types';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';
import type { BootRequest, BootResult, DeleteResult, ServerOperationResult } from '../workflows/types';
import {
  deploymentEnv,
  runClient,
  startScript,
  stopChild,
  workerReady,
  type ChildHandle,
} from './helpers/deployment';
import { openrcEnv, openstack } from './helpers/openstack-cli';

const run = promisify(execFile);
const HOST = 'compute1';

/** The guest's line once its DHCP lease is applied (lib/guest-image/udhcpc.sh), with its NIC's MTU. */
function leaseLine(uuid: string, mac: string, ip: string): RegExp {
  return new RegExp(
    `bootflow-guest: instance=${uuid} mac=${mac} ip=${ip.replace(/\./g, '\\.')}/\\d+ mtu=(\\d+) ready`,
    'g',
  );
}

interface Guest {
  uuid: string;
  mac: string;
  ip: string;
}

describe('real guests: the qemu driver with the linux-bridge agent', { timeout: 15 * 60_000 }, () => {
  let dataDir: string;
  let hostDir: string;
  let server: RunningDevServer;
  let env: NodeJS.ProcessEnv;
  let controller: ChildHandle | undefined;
  let compute: ChildHandle | undefined;
  let connection: Connection | undefined;
  let keystone: Keystone | undefined;
  let client: Client;
  let host: ComputeHost;
  let demoAuth: BootRequest['auth'];
  let adminAuth: BootRequest['auth'];
  let computeStarts = 0;
  // The guest under test.
  let uuid = '';
  let ip = '';
  let mac = '';
  let portId = '';
  let networkId = '';

  function startCompute(): ChildHandle {
    computeStarts += 1;
    return startScript(
      'worker.ts',
      ['--role', 'compute', '--host', HOST, '--virt-driver', 'qemu', '--network-agent', 'linux-bridge'],
      env,
      path.join(dataDir, `compute1-${computeStarts}.log`),
      { ipc: true },
    );
  }

  async function registered(): Promise<void> {
    await pollUntil(
      async () => {
        const state = await client.workflow
          .getHandle(computeServiceWorkflowId(HOST))
          .query<ComputeServiceState>('state')
          .catch(() => undefined);
        return state?.registered && state.up ? true : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: `${HOST} to register` },
    );
  }

  function consoleOutput(lines?: number, server = uuid): Promise<ConsoleOutput> {
    return client.workflow.execute('getConsoleOutput', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `console-output-test-${Date.now()}-${Math.random().toString(16).slice(2)}`,
      args: [{ auth: demoAuth, server, ...(lines === undefined ? {} : { lines }) }],
    });
  }

  /** Waits until the console shows the lease line `count` times (each boot prints it once). */
  async function leaseShown(
    count: number,
    timeoutMs = 120_000,
    guest: Guest = { uuid, mac, ip },
  ): Promise<string> {
    let last = '';
    return pollUntil(
      async () => {
        last = (await consoleOutput(undefined, guest.uuid)).output;
        return (last.match(leaseLine(guest.uuid, guest.mac, guest.ip)) ?? []).length >= count
          ? last
          : undefined;
      },
      {
        timeoutMs,
        intervalMs: 500,
        what: () => `the guest to print its lease ${count} time(s):\n${last.slice(-3000)}`,
      },
    );
  }

  /** The server as Nova records it (the showServer workflow, what `server show` reads). */
  function showServer(): Promise<ServerView> {
    return client.workflow.execute('showServer', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `show-server-test-${Date.now()}-${Math.random().toString(16).slice(2)}`,
      args: [{ auth: demoAuth, server: uuid }],
    });
  }

  /** Waits until Nova's record of the server satisfies `ok` (the power-state sync runs every 2 s here). */
  async function recordedAs(ok: (server: ServerView) => boolean, what: string): Promise<ServerView> {
    let last: ServerView | undefined;
    return pollUntil(
      async () => {
        last = await showServer();
        return ok(last) ? last : undefined;
      },
      {
        timeoutMs: 60_000,
        intervalMs: 1_000,
        what: () => `${what}; last: ${JSON.stringify(last && [last.status, last.vmState, last.powerState])}`,
      },
    );
  }

  function serviceState(): Promise<ComputeServiceState> {
    return client.workflow.getHandle(computeServiceWorkflowId(HOST)).query<ComputeServiceState>('state');
  }

  async function guestPid(instance: string): Promise<number | undefined> {
    return (await listQemuProcesses()).find((p) => p.uuid === instance)?.pid;
  }

  /** An HTTP GET to a guest from the DHCP namespace (busybox nc: there is no HTTP client in the base system). */
  async function httpGet(address: string, urlPath: string): Promise<string> {
    const { stdout } = await run(
      'sh',
      [
        '-c',
        `printf 'GET ${urlPath} HTTP/1.0\\r\\n\\r\\n' | ip netns exec qdhcp-${networkId} busybox nc -w 20 ${address} 80`,
      ],
      { timeout: 60_000 },
    );
    return stdout;
  }

  async function pingFromDhcpNamespace(): Promise<void> {
    await run('ip', ['netns', 'exec', `qdhcp-${networkId}`, 'busybox', 'ping', '-c', '3', '-W', '3', ip], {
      timeout: 30_000,
    });
  }

  before(async () => {
    const missing = await missingGuestTools();
    if (missing.length > 0)
      throw new Error(`real guests need: ${missing.join(', ')}. Install: ${INSTALL_COMMAND}`);
    if (process.getuid?.() !== 0) throw new Error('real guests need root (taps, bridges, namespaces)');
    const guest = await ensureGuestImage();
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-guest-'));
    hostDir = hostDirOf(dataDir, HOST);
    // The api role's port, for the controller and the openrc files' OS_AUTH_URL alike (the client's Keystone).
    const apiEnv = { BOOTFLOW_API_PORT: String(await freePort()) };
    const prepared = await prepareDataDir(dataDir, apiEnv, { guestImage: guest });
    networkId = prepared.cloud.privateNetworkId;
    const demo = readOpenrc(path.join(dataDir, 'demo-openrc.sh'));
    const admin = readOpenrc(path.join(dataDir, 'admin-openrc.sh'));
    demoAuth = { credentials: { username: 'demo', password: demo.password ?? '', projectName: 'demo' } };
    adminAuth = { credentials: { username: 'admin', password: admin.password ?? '', projectName: 'admin' } };
    server = await startDevServerOnFreePorts({
      dataDir,
      headless: true,
      searchAttributes: BOOT_SEARCH_ATTRIBUTES,
      output: { file: path.join(dataDir, 'temporal.log') },
    });
    env = deploymentEnv({
      BOOTFLOW_DATA: dataDir,
      TEMPORAL_ADDRESS: server.address,
      LOG_LEVEL: 'info',
      // The compute host's periodic power-state sync, every 2 s instead of a minute.
      BOOTFLOW_POWER_SYNC_SECONDS: '2',
      ...apiEnv,
    });
    controller = startScript(
      'worker.ts',
      ['--role', 'controller,network,api'],
      env,
      path.join(dataDir, 'controller.log'),
      {
        ipc: true,
      },
    );
    compute = startCompute();
    await Promise.all([workerReady(controller), workerReady(compute)]);
    connection = await Connection.connect({ address: server.address });
    // This cloud's Keystone (its signing key in the data directory) makes each workflow's grant, as a client would.
    keystone = await Keystone.open({ db: { dataDir } });
    client = new Client({
      connection,
      dataConverter: bootflowDataConverter(loadKeyringOrExplain(dataDir)),
      interceptors: { workflow: [grantingInterceptor(() => keystone)] },
    });
    await registered();
    // The test's own view of the host, as a second process on it would see it (reads files, QMP).
    host = await ComputeHost.open({
      host: HOST,
      hostDir,
      capabilities: capabilitiesOf(defaultHostSpec(HOST)),
      driver: 'qemu',
      networkAgent: 'linux-bridge',
      initHost: false,
      qemu: { shutdownTimeoutMs: 60_000, shutdownRetryIntervalMs: 3_000 },
    });
  });

  after(async () => {
    await connection?.close();
    await keystone?.close();
    for (const w of [compute, controller]) if (w) await stopChild(w, 'SIGTERM', 20_000);
    // Whatever happened: this run's QEMU processes, then its taps, bridges, namespaces and dnsmasq.
    if (dataDir) await removeCloudFromMachine(dataDir).catch(() => undefined);
    await server?.stop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('boots ACTIVE; the console shows the IPAM address; qdhcp pings it; its page names it', async (t) => {
    const started = Date.now();
    const request: BootRequest = {
      requestId: 'guest-qemu-1',
      auth: demoAuth,
      name: 'guest-1',
      flavor: 'm1.tiny',
      image: GUEST_IMAGE_NAME,
      networks: ['private'],
      timeouts: { hostPickupMs: 120_000 },
    };
    const result: BootResult = await client.workflow.execute('createInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: bootWorkflowId(request.requestId),
      args: [request],
    });
    const toActive = Date.now() - started;
    assert.equal(result.status, 'ACTIVE');
    assert.equal(result.host, HOST);
    assert.equal(result.powerState, POWER_STATE.RUNNING);
    uuid = result.id;
    const address = result.addresses.private?.[0];
    assert.ok(address, JSON.stringify(result.addresses));
    ip = address.addr;
    mac = address.macAddress;
    portId = address.portId;
    assert.match(ip, /^10\.0\.0\.\d+$/);

    // A real QEMU process for it, running per QMP, with the port's tap on the kernel's side.
    assert.ok(await guestPid(uuid), 'a QEMU process names the instance');
    assert.equal(await host.getPowerState(uuid), POWER_STATE.RUNNING);
    const instanceDir = path.join(hostDir, 'instances', uuid);
    for (const file of ['disk', 'libvirt.xml', 'domain.json', 'qemu.pid', 'console.log'])
      assert.ok(existsSync(path.join(instanceDir, file)), `${file} in the instance directory`);
    const { stdout: diskInfo } = await run('qemu-img', [
      'info',
      '-U',
      '--output=json',
      path.join(instanceDir, 'disk'),
    ]);
    const disk = JSON.parse(diskInfo) as {
      format: string;
      'backing-filename'?: string;
      'virtual-size': number;
    };
    assert.equal(disk.format, 'qcow2');
    assert.ok(
      disk['backing-filename']?.startsWith(path.join(hostDir, '_base')),
      'an overlay on the cached image',
    );
    assert.equal(disk['virtual-size'], 1024 ** 3, "the flavor's 1 GB root disk");
    const xml = readFileSync(path.join(instanceDir, 'libvirt.xml'), 'utf8');
    assert.match(xml, /<domain type="qemu">/);
    assert.match(xml, /<kernel>.*_base\/[0-9a-f-]+<\/kernel>/);

    const output = await leaseShown(1);
    const toConsoleIp = Date.now() - started;
    assert.match(output, new RegExp(`bootflow-guest: booting instance=${uuid}`));
    // The guest applied the MTU dnsmasq offers (the network's, below Ethernet's 1500), as the agent set its tap.
    const guestMtu = Number(leaseLine(uuid, mac, ip).exec(output)?.[1]);
    const [tapLink] = JSON.parse(
      (await run('ip', ['-j', 'link', 'show', 'dev', deviceNames(portId).tap])).stdout,
    ) as Array<{ mtu: number }>;
    assert.equal(guestMtu, tapLink?.mtu, "the guest's MTU is its network's");
    assert.ok(guestMtu < 1500, `the network's MTU (${guestMtu}) is below Ethernet's`);
    t.diagnostic(
      `boot to ACTIVE ${(toActive / 1000).toFixed(1)} s, to the IP on the console ${(toConsoleIp / 1000).toFixed(1)} s`,
    );

    const { stdout: namespaces } = await run('ip', ['netns', 'list']);
    assert.match(
      namespaces,
      new RegExp(`qdhcp-${networkId}`),
      'the agent made the network its DHCP namespace',
    );
    await pingFromDhcpNamespace();
    // The guest's httpd answers.
    const page = await httpGet(ip, '/');
    assert.match(page, /^HTTP\/1\.[01] 200/);
    assert.match(page, new RegExp(`bootflow guest ${uuid}`));

    // The client's `server console-log`, as an operator would read it.
    const cli = await runClient(['server', 'console-log', 'guest-1', '--lines', '50'], env);
    assert.equal(cli.code, 0, cli.stderr);
    assert.ok(cli.stdout.split('\n').length <= 51);
    assert.match(cli.stdout, leaseLine(uuid, mac, ip));

    // The OpenStack API's os-getConsoleOutput (the api role in the controller process), as the unmodified
    // `openstack console log show` calls it with the demo openrc.
    const osc = await openstack(openrcEnv(path.join(dataDir, 'demo-openrc.sh')), [
      'console',
      'log',
      'show',
      '--lines',
      '30',
      uuid,
    ]);
    assert.equal(osc.code, 0, osc.stderr);
    assert.match(osc.stdout, leaseLine(uuid, mac, ip));
  });

  test('two guests on one network ping each other', async () => {
    assert.ok(uuid, 'the boot test ran');
    const request: BootRequest = {
      requestId: 'guest-qemu-2',
      auth: demoAuth,
      name: 'guest-2',
      flavor: 'm1.tiny',
      image: GUEST_IMAGE_NAME,
      networks: ['private'],
      timeouts: { hostPickupMs: 120_000 },
    };
    const result: BootResult = await client.workflow.execute('createInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: bootWorkflowId(request.requestId),
      args: [request],
    });
    assert.equal(result.status, 'ACTIVE');
    const address = result.addresses.private?.[0];
    assert.ok(address, JSON.stringify(result.addresses));
    const second: Guest = { uuid: result.id, mac: address.macAddress, ip: address.addr };
    assert.notEqual(second.ip, ip);
    try {
      await leaseShown(1, 120_000, second);
      // Each guest pings the other from inside (its /cgi-bin/ping runs busybox ping in the guest).
      for (const [from, to] of [
        [ip, second.ip],
        [second.ip, ip],
      ] as const) {
        const answer = await httpGet(from, `/cgi-bin/ping?${to}`);
        assert.match(answer, /^HTTP\/1\.[01] 200/);
        assert.match(answer, new RegExp(`3 packets transmitted, 3 packets received`), answer);
        assert.match(answer, /exit=0/, answer);
      }
      // And a guest that pings an address nobody holds says so: the check above can fail.
      const nobody = await httpGet(ip, '/cgi-bin/ping?10.0.0.250');
      assert.match(nobody, /0 packets received/, nobody);
    } finally {
      const deleted: DeleteResult = await client.workflow.execute('deleteInstance', {
        taskQueue: CONTROLLER_QUEUE,
        workflowId: `delete-${second.uuid}`,
        args: [{ requestId: 'guest-qemu-delete-2', auth: demoAuth, instanceUuid: second.uuid }],
      });
      assert.equal(deleted.outcome, 'deleted');
    }
    assert.equal(await guestPid(second.uuid), undefined, 'the second guest is gone');
  });

  /** A power action through its workflow (nova-api's checks, the conductor, the host's driver). */
  async function operate(
    workflowType: 'stopInstance' | 'startInstance' | 'rebootInstance',
    type?: 'SOFT' | 'HARD',
  ): Promise<ServerOperationResult> {
    const requestId = `req-${workflowType}-${Date.now()}`;
    const operation = type
      ? `reboot-${type.toLowerCase()}`
      : workflowType === 'stopInstance'
        ? 'stop'
        : 'start';
    return client.workflow.execute(workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId(operation, uuid, requestId),
      args: [{ requestId, auth: demoAuth, instanceUuid: uuid, ...(type ? { type } : {}) }],
    });
  }

  test('stop/start and SOFT/HARD reboot through their workflows change the real power state', async () => {
    assert.ok(uuid, 'the boot test ran');
    const first = await guestPid(uuid);
    const stopped = await operate('stopInstance');
    assert.deepEqual([stopped.vmState, stopped.powerState], ['stopped', POWER_STATE.SHUTDOWN]);
    assert.equal(await guestPid(uuid), undefined, 'QEMU exited (ACPI power-off)');
    assert.equal((await host.getDomain(uuid))?.powerState, POWER_STATE.SHUTDOWN);
    // Nova's _tail_log counts the piece after the log's last newline: 6 pieces are its last 5 lines.
    const { output: afterStop } = await consoleOutput(6);
    assert.match(afterStop, /ACPI power button, powering off/);

    const startedAgain = await operate('startInstance');
    assert.deepEqual([startedAgain.vmState, startedAgain.powerState], ['active', POWER_STATE.RUNNING]);
    const second = await guestPid(uuid);
    assert.ok(second && second !== first, 'a new QEMU process');
    // QMP's query-status, read by the driver: the guest runs.
    assert.equal((await host.getDomain(uuid))?.powerState, POWER_STATE.RUNNING);
    await leaseShown(2);

    // The guest goes off without Nova asking (as a shutdown inside it would): the host's periodic power-state
    // sync reports it, and Nova, as _sync_power_states does, stops the ACTIVE instance.
    assert.equal((await host.powerOff(uuid)).powerState, POWER_STATE.SHUTDOWN);
    assert.equal(await guestPid(uuid), undefined, 'QEMU exited (ACPI power-off)');
    const stoppedRecord = await recordedAs((s) => s.status === 'SHUTOFF', 'Nova to record the guest off');
    assert.equal(stoppedRecord.vmState, 'stopped');
    assert.equal(stoppedRecord.taskState, null);
    assert.equal(stoppedRecord.powerState, POWER_STATE.SHUTDOWN);
    const restarted = await operate('startInstance');
    assert.deepEqual([restarted.vmState, restarted.powerState], ['active', POWER_STATE.RUNNING]);
    const third = await guestPid(uuid);
    assert.ok(third && third !== second, 'a new QEMU process');
    await leaseShown(3);

    const soft = await operate('rebootInstance', 'SOFT');
    assert.equal(soft.powerState, POWER_STATE.RUNNING);
    const fourth = await guestPid(uuid);
    assert.ok(fourth && fourth !== third, 'a SOFT reboot powers off through ACPI and starts QEMU again');
    await leaseShown(4);

    const hard = await operate('rebootInstance', 'HARD');
    assert.equal(hard.powerState, POWER_STATE.RUNNING);
    assert.equal(await guestPid(uuid), fourth, 'a HARD reboot resets the same QEMU');
    await leaseShown(5);
    await pingFromDhcpNamespace();
  });

  test('kill -9 of the compute worker: the guest runs on; a new worker manages it and reaps a stray', async () => {
    assert.ok(uuid, 'the boot test ran');
    const pid = await guestPid(uuid);
    assert.ok(compute);
    await stopChild(compute, 'SIGKILL', 5_000);
    const syncsBefore = (await serviceState()).powerSyncs;
    assert.equal(await guestPid(uuid), pid, 'the guest outlives its worker');
    await pingFromDhcpNamespace();

    // A stray: a guest started on this host whose instance directory then disappears.
    const stray = '0badc0de-0000-4000-8000-000000000001';
    await host.createInstanceDir(stray, { rootGb: 1 });
    await host.spawn(stray, { vcpus: 1, memoryMb: 128, portIds: [] });
    const strayPid = await guestPid(stray);
    assert.ok(strayPid, 'the stray runs');
    rmSync(path.join(hostDir, 'instances', stray), { recursive: true, force: true });

    compute = startCompute();
    await workerReady(compute);
    assert.equal(await guestPid(stray), undefined, 'init_host killed the guest the host no longer knows');
    const reaped = compute
      .output()
      .split('\n')
      .find((line) => line.includes('init_host: killed stray guests'));
    assert.ok(reaped?.includes(stray), `the worker's log names the stray: ${reaped}`);
    assert.equal(await guestPid(uuid), pid, 'and left the known guest alone');
    const { output, host: answeredBy } = await consoleOutput(21);
    assert.equal(answeredBy, HOST);
    assert.match(output, leaseLine(uuid, mac, ip));
    assert.equal(await host.getPowerState(uuid), POWER_STATE.RUNNING);
    // And the power-state sync reads this host again, through the new worker.
    await pollUntil(
      async () => {
        const s = await serviceState();
        return s.powerSyncs >= syncsBefore + 2 && s.lastPowerSyncError === null ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1_000, what: 'power-state syncs through the new worker' },
    );
    assert.equal((await showServer()).powerState, POWER_STATE.RUNNING);
  });

  /** Pause, unpause, suspend or resume through its workflow. */
  function operateOn(
    workflowType: 'pauseInstance' | 'unpauseInstance' | 'suspendInstance' | 'resumeInstance',
  ): Promise<ServerOperationResult> {
    const requestId = `req-${workflowType}-${Date.now()}`;
    const operation = workflowType.replace(/Instance$/, '');
    return client.workflow.execute(workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId(operation, uuid, requestId),
      args: [{ requestId, auth: demoAuth, instanceUuid: uuid }],
    });
  }

  async function qmpStatus(): Promise<string> {
    return (await queryStatus(path.join(hostDir, 'instances', uuid, 'qmp.sock'))).status;
  }

  test('pause/unpause keep the process (QMP paused); suspend saves the state, resume restores it', async () => {
    assert.ok(uuid, 'the boot test ran');
    const pid = await guestPid(uuid);
    assert.ok(pid);
    const paused = await operateOn('pauseInstance');
    assert.deepEqual([paused.vmState, paused.powerState], ['paused', POWER_STATE.PAUSED]);
    assert.equal(await qmpStatus(), 'paused');
    assert.equal(await guestPid(uuid), pid, 'the same QEMU holds the paused guest');
    await assert.rejects(pingFromDhcpNamespace(), 'a paused guest does not answer');
    const unpaused = await operateOn('unpauseInstance');
    assert.deepEqual([unpaused.vmState, unpaused.powerState], ['active', POWER_STATE.RUNNING]);
    assert.equal(await qmpStatus(), 'running');
    await pingFromDhcpNamespace();

    // Suspend: libvirt's managed save. The state is in the instance directory, QEMU is gone.
    const saveFile = path.join(hostDir, 'instances', uuid, 'managed.save');
    const suspended = await operateOn('suspendInstance');
    assert.deepEqual([suspended.vmState, suspended.powerState], ['suspended', POWER_STATE.SHUTDOWN]);
    assert.equal(await guestPid(uuid), undefined, 'no QEMU process');
    assert.ok(existsSync(saveFile), 'the saved state is in the instance directory');
    assert.ok(statSync(saveFile).size > 1024 * 1024, 'it holds the guest memory');

    // A restarted compute worker (init_host) leaves the suspended guest alone, and the power-state sync
    // does not stop it: it stays SUSPENDED with its saved state.
    assert.ok(compute);
    await stopChild(compute, 'SIGKILL', 5_000);
    compute = startCompute();
    await workerReady(compute);
    const syncsBefore = (await serviceState()).powerSyncs;
    await pollUntil(async () => ((await serviceState()).powerSyncs >= syncsBefore + 2 ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 1_000,
      what: 'power-state syncs after the restart',
    });
    const record = await showServer();
    assert.deepEqual([record.status, record.vmState, record.powerState], ['SUSPENDED', 'suspended', 4]);
    assert.ok(existsSync(saveFile), 'the saved state survives the restart');
    assert.equal(await guestPid(uuid), undefined);

    const resumed = await operateOn('resumeInstance');
    assert.deepEqual([resumed.vmState, resumed.powerState], ['active', POWER_STATE.RUNNING]);
    const restored = await guestPid(uuid);
    assert.ok(restored && restored !== pid, 'a new QEMU process, restored from the saved state');
    assert.equal(await qmpStatus(), 'running');
    assert.equal(existsSync(saveFile), false, 'the saved state is removed once restored');
    // The guest carries on where it was (no new boot, no new lease line) and answers.
    await pingFromDhcpNamespace();

    // Nova's ALLOW_HARD_REBOOT: a paused guest is reset in the same process and runs; a suspended one
    // starts afresh, its saved state discarded.
    await operateOn('pauseInstance');
    const fromPaused = await operate('rebootInstance', 'HARD');
    assert.deepEqual([fromPaused.vmState, fromPaused.powerState], ['active', POWER_STATE.RUNNING]);
    assert.equal(await guestPid(uuid), restored, 'the same QEMU, reset');
    assert.equal(await qmpStatus(), 'running');
    await operateOn('suspendInstance');
    assert.ok(existsSync(saveFile));
    const fromSuspended = await operate('rebootInstance', 'HARD');
    assert.deepEqual([fromSuspended.vmState, fromSuspended.powerState], ['active', POWER_STATE.RUNNING]);
    assert.ok(await guestPid(uuid), 'a new QEMU process');
    assert.equal(existsSync(saveFile), false, 'the saved state is discarded');
    assert.equal(await qmpStatus(), 'running');

    // Suspended again: the delete below must leave nothing of it (the saved state included).
    await operateOn('suspendInstance');
    assert.ok(existsSync(saveFile));
    assert.equal(await guestPid(uuid), undefined);
  });

  test('delete leaves no QEMU process, tap, instance directory or audit finding; the network stays served', async () => {
    assert.ok(uuid, 'the boot test ran');
    const deleted: DeleteResult = await client.workflow.execute('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `delete-${uuid}`,
      args: [{ requestId: 'guest-qemu-delete-1', auth: demoAuth, instanceUuid: uuid }],
    });
    assert.equal(deleted.outcome, 'deleted');
    assert.equal(await guestPid(uuid), undefined, 'no QEMU process');
    assert.equal(existsSync(path.join(hostDir, 'instances', uuid)), false, 'no instance directory');
    const tap = deviceNames(portId).tap;
    await assert.rejects(run('ip', ['link', 'show', 'dev', tap]), `no ${tap}`);
    // It was the network's last port on this machine: as Neutron's DHCP agent, the network stays served
    // (it still has its DHCP subnet): namespace, bridge, the DHCP veth and dnsmasq, with no host lines.
    const { stdout: namespaces } = await run('ip', ['netns', 'list']);
    assert.match(namespaces, new RegExp(`qdhcp-${networkId}`), 'the qdhcp namespace stays');
    await run('ip', ['link', 'show', 'dev', bridgeName(networkId)]);
    const devices = await listHostDevices(hostDir);
    assert.deepEqual(devices.links, [], 'no tap of this host');
    assert.deepEqual(devices.namespaces, [`qdhcp-${networkId}`]);
    assert.deepEqual(
      devices.dnsmasq.map((d) => d.networkId),
      [networkId],
    );
    const server = new DhcpServer(hostDir, networkId);
    assert.equal(readFileSync(server.hostsFile, 'utf8'), '', 'no host lines');
    const findings: LeakFinding[] = await client.workflow.execute('auditCloud', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: `audit-${Date.now()}`,
      args: [{ auth: adminAuth }],
    });
    assert.deepEqual(findings, []);
  });
});
