/**
 * The Linux-bridge network agent and the DHCP agent on the real kernel (root): bridges, taps, a qdhcp
 * namespace with dnsmasq, a DHCP client in a namespace of its own standing in for the guest, ping from the
 * DHCP namespace, unplug (the network stays served, as Neutron's DHCP agent keeps it), the DHCP agent's sync
 * removing a deleted network, and the host's audit of strays. Never skipped: without root, ip,
 * tun, dnsmasq or a DHCP client it fails and says what to install. Everything made here is named after this
 * run's random ids and removed in `after`, even when a test fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { access, chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { openCloud, openComputeHost, type Cloud } from '../cloud';
import { auditLeaks } from '../cloud/audit';
import { bootstrapCloud, type BootstrapResult } from '../cloud/bootstrap';
import { removeCloudFromMachine, type ComputeHost, type DhcpNetwork } from '../cloud/compute';
import { commandExists, runCommand } from '../cloud/compute/host-commands';
import {
  bridgeName,
  DhcpServer,
  dhcpNamespace,
  dhcpVethNames,
  ensureNetwork,
  hostTag,
  listNamespaces,
  networkTag,
  plugTap,
  readLink,
  removeHostDevices,
  stopProcess,
  tapName,
} from '../cloud/compute/linux-bridge';
import { DEFAULT_HOSTS, capabilitiesOf } from '../cloud/hosts';
import { DHCP_DEVICE_OWNER, type Port } from '../cloud/neutron';
import { isCloudError } from '../cloud/errors';
import { testDbConfig, type TestDb } from './helpers/cloud-db';

const SPEC = DEFAULT_HOSTS[0]!;
const INSTALL = 'apt-get install --no-install-recommends iproute2 dnsmasq-base busybox-static';

/** What this suite needs of the machine; every missing piece is named with the package that brings it. */
async function missingPrerequisites(): Promise<string[]> {
  const missing: string[] = [];
  if (process.getuid?.() !== 0)
    missing.push('root (network namespaces, bridges and taps need CAP_NET_ADMIN)');
  if (!(await commandExists('ip'))) missing.push('ip (iproute2)');
  try {
    await access('/dev/net/tun');
  } catch {
    missing.push('/dev/net/tun (the tun driver)');
  }
  if (!(await commandExists('dnsmasq'))) missing.push('dnsmasq (dnsmasq-base)');
  if (!(await dhcpClient())) missing.push('a DHCP client: busybox udhcpc (busybox-static) or dhclient');
  return missing;
}

/** busybox's udhcpc, or dhclient, whichever is installed. */
async function dhcpClient(): Promise<'udhcpc' | 'dhclient' | undefined> {
  if (await commandExists('busybox')) {
    const { stdout } = await runCommand('busybox', ['--list']);
    if (stdout.split('\n').includes('udhcpc')) return 'udhcpc';
  }
  return (await commandExists('dhclient')) ? 'dhclient' : undefined;
}

async function ipAddresses(ifname: string, namespace?: string): Promise<string[]> {
  const { stdout } = await runCommand('ip', [
    ...(namespace ? ['-n', namespace] : []),
    '-j',
    'addr',
    'show',
    'dev',
    ifname,
  ]);
  const [entry] = JSON.parse(stdout) as Array<{ addr_info: Array<{ family: string; local: string }> }>;
  return (entry?.addr_info ?? []).filter((a) => a.family === 'inet').map((a) => a.local);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('linux-bridge network agent and DHCP agent on this machine', () => {
  let testDb: TestDb;
  let cloud: Cloud;
  let seed: BootstrapResult;
  let host: ComputeHost;
  let hostDir: string;
  let networkId: string;
  let subnetId: string;
  let scratch: string;
  const run = randomBytes(4).toString('hex');
  /** The stand-in guests: a namespace with a veth whose other end is on the bridge, named after this run. */
  interface StandIn {
    namespace: string;
    bridgeEnd: string;
  }
  const firstGuest: StandIn = { namespace: `bfguest-${run}`, bridgeEnd: `vg${run}` };
  /** The second compute host's guest. */
  const secondGuest: StandIn = { namespace: `bfguest2-${run}`, bridgeEnd: `vh${run}` };
  const ports: Port[] = [];
  let dhcp: DhcpNetwork;

  before(async () => {
    const missing = await missingPrerequisites();
    if (missing.length > 0)
      throw new Error(`this suite needs ${missing.join(', ')}; install with: ${INSTALL} (and run as root)`);
    testDb = testDbConfig('linux-bridge');
    cloud = await openCloud({ db: testDb.config });
    seed = await bootstrapCloud(cloud, { hosts: [SPEC] });
    host = await openComputeHost({
      dataDir: cloud.dataDir,
      host: SPEC.host,
      capabilities: capabilitiesOf(SPEC),
      networkAgent: 'linux-bridge',
    });
    hostDir = host.hostDir;
    scratch = await mkdtemp(path.join(os.tmpdir(), 'bootflow-guest-'));
    // A network of this run: its id is random, so its bridge and namespace names are this run's alone.
    const network = await cloud.neutron.createNetwork({ name: `lb-${run}`, projectId: seed.demo.projectId });
    networkId = network.id;
    subnetId = (await cloud.neutron.createSubnet({ networkId, cidr: '10.123.45.0/24' })).id;
  });

  after(async () => {
    // Whatever happened above: the guest namespace and veth, then every device and dnsmasq of the host.
    const namespaces = await listNamespaces().catch((): string[] => []);
    for (const guest of [firstGuest, secondGuest]) {
      if (namespaces.includes(guest.namespace))
        await runCommand('ip', ['netns', 'del', guest.namespace]).catch(() => undefined);
      await runCommand('ip', ['link', 'del', 'dev', guest.bridgeEnd]).catch(() => undefined);
    }
    if (cloud) await removeCloudFromMachine(cloud.dataDir);
    if (scratch) await rm(scratch, { recursive: true, force: true });
    await cloud?.close();
    await testDb?.cleanup();
  });

  /** A guest port as a boot makes it: created, bound to the host, then plugged with its network's DHCP. */
  async function plugNewPort(): Promise<Port> {
    const port = await cloud.neutron.createPort({
      requestKey: `${run}:${ports.length}`,
      networkId,
      projectId: seed.demo.projectId,
      deviceId: randomUUID(),
      deviceOwner: 'compute:nova',
    });
    const { port: bound } = await cloud.neutron.bindPort(port.id, SPEC.host);
    const details = await cloud.neutron.ensureDhcpPort(networkId);
    assert.ok(details, 'the network has a DHCP port');
    dhcp = details;
    await host.plugVif({ ...bound, dhcp: details });
    ports.push(bound);
    return bound;
  }

  const hostsLines = async () =>
    (await readFile(new DhcpServer(hostDir, networkId).hostsFile, 'utf8')).split('\n').filter(Boolean).sort();
  const lineOf = (port: Port) => `${port.macAddress},${port.fixedIps[0]?.ipAddress}`;

  test('the DHCP port is the network’s, with an address from the pool', async () => {
    const first = await cloud.neutron.ensureDhcpPort(networkId);
    const again = await cloud.neutron.ensureDhcpPort(networkId);
    assert.ok(first && again);
    assert.equal(again.dhcpPortId, first.dhcpPortId, 'idempotent');
    const port = await cloud.neutron.getPort(first.dhcpPortId);
    assert.equal(port.deviceOwner, DHCP_DEVICE_OWNER);
    assert.deepEqual(port.fixedIps, [{ subnetId, ipAddress: first.dhcpIpAddress }]);
    assert.equal(first.cidr, '10.123.45.0/24');
    assert.equal(first.gatewayIp, '10.123.45.1');
    const allocations = await cloud.neutron.listIpAllocations(networkId);
    assert.deepEqual(
      allocations.map((a) => [a.portId, a.ipAddress]),
      [[first.dhcpPortId, first.dhcpIpAddress]],
    );
  });

  test('a plug without the network’s DHCP details is refused and creates nothing', async () => {
    const port = await cloud.neutron.createPort({
      requestKey: `${run}:refused`,
      networkId,
      projectId: seed.demo.projectId,
      deviceId: randomUUID(),
      deviceOwner: 'compute:nova',
    });
    const { port: bound } = await cloud.neutron.bindPort(port.id, SPEC.host);
    await assert.rejects(host.plugVif(bound), (err: unknown) =>
      isCloudError(err, 'VirtualInterfaceCreateException'),
    );
    assert.equal(await readLink(tapName(port.id)), undefined);
    assert.equal(await readLink(bridgeName(networkId)), undefined);
    assert.deepEqual(await host.listVifs(), []);
    await cloud.neutron.deletePort(port.id);
  });

  test('two ports: a bridge, both taps on it and up, the namespace and dnsmasq with two host lines', async () => {
    const [a, b] = [await plugNewPort(), await plugNewPort()];
    const bridge = await readLink(bridgeName(networkId));
    assert.ok(bridge, `bridge ${bridgeName(networkId)} exists`);
    assert.equal(bridge.master, undefined, 'no uplink');
    assert.deepEqual(await ipAddresses(bridgeName(networkId)), [], 'the bridge has no address');
    for (const port of [a, b]) {
      const tap = await readLink(tapName(port.id));
      assert.equal(tap?.master, bridgeName(networkId));
      assert.ok(tap?.flags?.includes('UP'), `${tapName(port.id)} is up`);
    }
    const vifs = await host.listVifs();
    assert.deepEqual(
      vifs.map((v) => [v.portId, v.bridge, v.tap, v.ipAddress]).sort(),
      [a, b]
        .map((p) => [p.id, bridgeName(networkId), tapName(p.id), p.fixedIps[0]?.ipAddress ?? null])
        .sort(),
    );

    assert.ok((await listNamespaces()).includes(dhcpNamespace(networkId)));
    const veth = dhcpVethNames(dhcp.dhcpPortId);
    assert.equal((await readLink(veth.bridgeEnd))?.master, bridgeName(networkId));
    assert.deepEqual(await ipAddresses(veth.namespaceEnd, dhcpNamespace(networkId)), [dhcp.dhcpIpAddress]);
    assert.equal((await readLink(veth.namespaceEnd, dhcpNamespace(networkId)))?.address, dhcp.dhcpMacAddress);

    const pid = await new DhcpServer(hostDir, networkId).runningPid();
    assert.ok(pid !== undefined && alive(pid), 'dnsmasq runs');
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    assert.ok(
      argv.includes('--dhcp-range=set:subnet-' + subnetId + ',10.123.45.0,static,255.255.255.0,86400s'),
    );
    for (const flag of ['--no-resolv', '--no-hosts', `--interface=${veth.namespaceEnd}`])
      assert.ok(argv.includes(flag));
    assert.deepEqual(await hostsLines(), [lineOf(a), lineOf(b)].sort());
  });

  /**
   * Runs a DHCP client in the stand-in guest (made on first use: a namespace with a veth whose other end is
   * on the bridge) with `mac` on its NIC; the client's script configures the lease and writes down what it
   * got (udhcpc's and dhclient's conventions). Returns [address, router].
   */
  async function dhcpAsGuest(mac: string, guest: StandIn = firstGuest): Promise<[string, string]> {
    const guestNamespace = guest.namespace;
    if (!(await listNamespaces()).includes(guestNamespace)) {
      await runCommand('ip', ['netns', 'add', guestNamespace]);
      await runCommand('ip', ['link', 'add', 'name', guest.bridgeEnd, 'type', 'veth', 'peer', 'name', 'g0']);
      await runCommand('ip', ['link', 'set', 'dev', 'g0', 'netns', guestNamespace]);
      await runCommand('ip', ['link', 'set', 'dev', guest.bridgeEnd, 'master', bridgeName(networkId), 'up']);
    }
    await runCommand('ip', ['-n', guestNamespace, 'addr', 'flush', 'dev', 'g0']);
    await runCommand('ip', ['-n', guestNamespace, 'link', 'set', 'dev', 'g0', 'down']);
    await runCommand('ip', ['-n', guestNamespace, 'link', 'set', 'dev', 'g0', 'address', mac, 'up']);
    const leaseFile = path.join(scratch, 'lease');
    const script = path.join(scratch, 'dhcp-script');
    await rm(leaseFile, { force: true });
    await writeFile(
      script,
      [
        '#!/bin/sh',
        'case "$1$reason" in',
        '  bound|renew|BOUND|RENEW|REBOOT)',
        '    addr="${ip:-$new_ip_address}"; router="${router:-$new_routers}"',
        '    bits="${mask:-24}"',
        '    ip addr add "$addr/$bits" dev "${interface}" 2>/dev/null',
        `    echo "$addr $router" > ${leaseFile} ;;`,
        'esac',
        '',
      ].join('\n'),
    );
    await chmod(script, 0o755);
    const client = await dhcpClient();
    const argv =
      client === 'udhcpc'
        ? ['busybox', 'udhcpc', '-i', 'g0', '-f', '-q', '-n', '-t', '10', '-T', '2', '-s', script]
        : [
            'dhclient',
            '-1',
            '-sf',
            script,
            '-pf',
            path.join(scratch, 'dhclient.pid'),
            '-lf',
            path.join(scratch, `dhclient-${mac}.leases`),
            'g0',
          ];
    await runCommand('ip', ['netns', 'exec', guestNamespace, ...argv], { timeoutMs: 90_000 });
    const [leased, router] = (await readFile(leaseFile, 'utf8')).trim().split(' ');
    return [leased ?? '', router ?? ''];
  }

  async function pingFromNamespace(namespace: string, address: string): Promise<string> {
    const ping = (await commandExists('ping')) ? ['ping'] : ['busybox', 'ping'];
    const { stdout } = await runCommand(
      'ip',
      ['netns', 'exec', namespace, ...ping, '-c', '1', '-W', '5', address],
      { timeoutMs: 30_000 },
    );
    return stdout;
  }

  const pingFromDhcpNamespace = (address: string) => pingFromNamespace(dhcpNamespace(networkId), address);

  test('a guest on the bridge gets exactly the IPAM’s address by DHCP and answers ping', async () => {
    const port = ports[0]!;
    const want = port.fixedIps[0]?.ipAddress ?? '';
    const [leased, router] = await dhcpAsGuest(port.macAddress);
    assert.equal(leased, want, 'the DHCP answer is the port’s fixed IP');
    assert.equal(router, '10.123.45.1', 'the router option is the subnet’s gateway');
    assert.match(
      await readFile(new DhcpServer(hostDir, networkId).leaseFile, 'utf8'),
      new RegExp(` ${port.macAddress} ${want.replaceAll('.', '\\.')} `),
    );
    assert.match(await pingFromDhcpNamespace(want), /1 (packets )?received/);
  });

  test('a second compute host of this cloud shares the network: one bridge and dnsmasq, its own tap; its guest reaches the first host’s', async () => {
    const other = await openComputeHost({
      dataDir: cloud.dataDir,
      host: 'compute2',
      capabilities: capabilitiesOf(SPEC),
      networkAgent: 'linux-bridge',
    });
    assert.equal(networkTag(other.hostDir), networkTag(hostDir), 'the hosts of one cloud share a mark');
    const server = new DhcpServer(hostDir, networkId);
    const dnsmasq = await server.runningPid();
    const port = await cloud.neutron.createPort({
      requestKey: `${run}:other-host`,
      networkId,
      projectId: seed.demo.projectId,
      deviceId: randomUUID(),
      deviceOwner: 'compute:nova',
    });
    const { port: bound } = await cloud.neutron.bindPort(port.id, 'compute2');
    await other.plugVif({ ...bound, dhcp });
    try {
      const tap = await readLink(tapName(bound.id));
      assert.equal(tap?.master, bridgeName(networkId), 'on the same bridge');
      assert.equal(tap?.ifalias, hostTag(other.hostDir), 'the tap is the second host’s');
      assert.equal((await readLink(bridgeName(networkId)))?.ifalias, networkTag(hostDir));
      assert.equal(await server.runningPid(), dnsmasq, 'the same dnsmasq serves both hosts’ ports');
      assert.deepEqual(await server.members(), [SPEC.host, 'compute2'].sort());
      assert.deepEqual(await hostsLines(), [...ports.map(lineOf), lineOf(bound)].sort());

      // The second host's guest gets its port's address and reaches the first host's guest.
      const [leased] = await dhcpAsGuest(bound.macAddress, secondGuest);
      assert.equal(leased, bound.fixedIps[0]?.ipAddress);
      const firstAddress = ports[0]!.fixedIps[0]!.ipAddress;
      assert.match(await pingFromNamespace(secondGuest.namespace, firstAddress), /1 (packets )?received/);
      assert.match(await pingFromNamespace(firstGuest.namespace, leased), /1 (packets )?received/);

      // Neither host's audit sees the other's devices as strays.
      const deviceKinds = new Set(['tap', 'bridge', 'namespace', 'dnsmasq']);
      const devices = async (h: ComputeHost, live: string[]) =>
        (await h.auditLeaks(live)).filter((f) => deviceKinds.has(f.kind));
      assert.deepEqual(await devices(other, [bound.deviceId ?? '']), []);
      assert.deepEqual(
        await devices(
          host,
          ports.map((p) => p.deviceId ?? ''),
        ),
        [],
      );
    } finally {
      assert.equal(await other.unplugVif(bound.id), true);
    }
    // The second host's last port left: its tap and lines are gone; its DHCP agent still serves the
    // network (a member with no lines) until neutron-server's list no longer gives it the network.
    assert.equal(await readLink(tapName(bound.id)), undefined);
    assert.deepEqual(await server.members(), [SPEC.host, 'compute2'].sort());
    assert.deepEqual(await hostsLines(), ports.map(lineOf).sort());
    assert.deepEqual(await other.syncDhcpNetworks([]), { served: [], removed: [networkId] });
    assert.deepEqual(await server.members(), [SPEC.host], 'it left; the first host serves on');
    assert.ok(await readLink(bridgeName(networkId)));
    assert.ok(!(await server.holdsLeaseOf([bound.macAddress])), 'its guest’s lease is released');
    const serving = await server.runningPid();
    assert.ok(serving !== undefined && alive(serving), 'dnsmasq serves on (restarted without that lease)');
    assert.match(await pingFromDhcpNamespace(ports[0]!.fixedIps[0]!.ipAddress), /1 (packets )?received/);
    await runCommand('ip', ['netns', 'del', secondGuest.namespace]);
    await cloud.neutron.deletePort(port.id);
  });

  test('another cloud on this machine has its own names, and its clean-up leaves this one alone', async () => {
    const otherData = await mkdtemp(path.join(os.tmpdir(), 'bootflow-other-cloud-'));
    try {
      const other = await openComputeHost({
        dataDir: otherData,
        host: SPEC.host,
        capabilities: capabilitiesOf(SPEC),
        networkAgent: 'linux-bridge',
      });
      // Same host name and the same CIDR; only the ids differ, as between two test runs.
      const otherNetwork: DhcpNetwork = {
        ...dhcp,
        networkId: randomUUID(),
        subnetId: randomUUID(),
        dhcpPortId: randomUUID(),
      };
      const otherPort = randomUUID();
      await other.plugVif({
        id: otherPort,
        macAddress: ports[0]!.macAddress,
        deviceId: randomUUID(),
        networkId: otherNetwork.networkId,
        fixedIps: [{ subnetId: otherNetwork.subnetId, ipAddress: ports[0]!.fixedIps[0]!.ipAddress }],
        dhcp: otherNetwork,
      });
      assert.equal((await readLink(tapName(otherPort)))?.master, bridgeName(otherNetwork.networkId));
      // A network id of ours (never the case between random ids; here on purpose): our bridge is not its.
      const intruder = randomUUID();
      await assert.rejects(
        other.plugVif({
          id: intruder,
          macAddress: 'fa:16:3e:66:66:66',
          deviceId: randomUUID(),
          networkId,
          fixedIps: [{ subnetId: dhcp.subnetId, ipAddress: '10.123.45.66' }],
          dhcp,
        }),
        (err: unknown) =>
          isCloudError(err, 'VirtualInterfaceCreateException') &&
          /already wired on this machine by another cloud/.test(err.message),
      );
      assert.equal(await readLink(tapName(intruder)), undefined);
      assert.equal((await readLink(bridgeName(networkId)))?.ifalias, networkTag(hostDir), 'still ours');
      const ourDnsmasq = await new DhcpServer(hostDir, networkId).runningPid();

      assert.deepEqual((await removeCloudFromMachine(otherData)).hostDirs, [other.hostDir]);
      assert.equal(await readLink(tapName(otherPort)), undefined);
      assert.equal(await readLink(bridgeName(otherNetwork.networkId)), undefined);
      assert.ok(!(await listNamespaces()).includes(dhcpNamespace(otherNetwork.networkId)));
      // Ours untouched.
      for (const port of ports)
        assert.equal((await readLink(tapName(port.id)))?.master, bridgeName(networkId));
      assert.ok((await listNamespaces()).includes(dhcpNamespace(networkId)));
      assert.equal(await new DhcpServer(hostDir, networkId).runningPid(), ourDnsmasq);
    } finally {
      await removeCloudFromMachine(otherData);
      await rm(otherData, { recursive: true, force: true });
    }
  });

  test('unplugging one port removes its tap, its host line and its lease; the network stays', async () => {
    const [gone, kept] = [ports[0]!, ports[1]!];
    const server = new DhcpServer(hostDir, networkId);
    assert.ok(await server.holdsLeaseOf([gone.macAddress]), 'the guest took a lease');
    assert.equal(await host.unplugVif(gone.id), true);
    assert.equal(await host.unplugVif(gone.id), false, 'a repeat is a no-op');
    assert.equal(await readLink(tapName(gone.id)), undefined);
    assert.deepEqual(await hostsLines(), [lineOf(kept)]);
    assert.ok(!(await server.holdsLeaseOf([gone.macAddress])), 'its lease is released');
    const pid = await server.runningPid();
    assert.ok(pid !== undefined && alive(pid), 'dnsmasq serves on');
    assert.ok(await readLink(bridgeName(networkId)));
    assert.ok((await listNamespaces()).includes(dhcpNamespace(networkId)));
  });

  test('the freed address goes to the next port’s MAC by DHCP at once (no stale lease in the way)', async () => {
    const gone = ports[0]!;
    const address = gone.fixedIps[0]?.ipAddress ?? '';
    await cloud.neutron.deletePort(gone.id);
    const port = await cloud.neutron.createPort({
      requestKey: `${run}:reuse`,
      networkId,
      projectId: seed.demo.projectId,
      deviceId: randomUUID(),
      deviceOwner: 'compute:nova',
    });
    assert.equal(port.fixedIps[0]?.ipAddress, address, 'the IPAM hands out the lowest free address again');
    assert.notEqual(port.macAddress, gone.macAddress);
    const { port: bound } = await cloud.neutron.bindPort(port.id, SPEC.host);
    await host.plugVif({ ...bound, dhcp });
    ports.push(bound);
    const [leased] = await dhcpAsGuest(bound.macAddress);
    assert.equal(leased, address);
    assert.match(await pingFromDhcpNamespace(address), /1 (packets )?received/);
  });

  test('a restarted agent rewrites the hosts files from its records and starts a dnsmasq that is gone', async () => {
    const server = new DhcpServer(hostDir, networkId);
    const before = await server.runningPid();
    assert.ok(before !== undefined);
    await stopProcess(before);
    // The hosts files are written without fsync: a machine crash may lose them, the agent's records not.
    await writeFile(server.hostsFile, '');
    await rm(path.join(server.membersDir, path.basename(hostDir)), { force: true });
    await openComputeHost({
      dataDir: cloud.dataDir,
      host: SPEC.host,
      capabilities: capabilitiesOf(SPEC),
      networkAgent: 'linux-bridge',
    });
    const after = await server.runningPid();
    assert.ok(after !== undefined && after !== before && alive(after), 'dnsmasq runs again');
    assert.deepEqual(await hostsLines(), [lineOf(ports[1]!), lineOf(ports[2]!)].sort());
  });

  test('unplugging the last port keeps the network served; the DHCP agent’s sync removes it once deleted', async () => {
    const [kept, last] = [ports[1]!, ports[2]!];
    assert.equal(await host.unplugVif(kept.id), true);
    assert.equal(await host.unplugVif(last.id), true);
    assert.equal(await readLink(tapName(last.id)), undefined);
    // Restarted without the last guest's lease (released), not stopped.
    const pid = await new DhcpServer(hostDir, networkId).runningPid();
    assert.ok(pid !== undefined && alive(pid), 'dnsmasq serves on');
    // As Neutron's DHCP agent: a network keeps its namespace and dnsmasq while it has a DHCP subnet.
    assert.ok(await readLink(bridgeName(networkId)));
    assert.equal((await readLink(dhcpVethNames(dhcp.dhcpPortId).bridgeEnd))?.master, bridgeName(networkId));
    assert.ok((await listNamespaces()).includes(dhcpNamespace(networkId)));
    assert.deepEqual(await hostsLines(), []);
    assert.deepEqual(
      (await host.listWiredNetworks()).map((n) => n.networkId),
      [networkId],
    );
    assert.deepEqual(await host.auditLeaks([]), []);
    assert.deepEqual(await host.auditLeaks([], [networkId]), [], 'served for a network with a DHCP subnet');
    assert.deepEqual(await host.syncDhcpNetworks([dhcp]), { served: [networkId], removed: [] });
    assert.equal(await new DhcpServer(hostDir, networkId).runningPid(), pid, 'a sync changes nothing served');

    // The network can go now: its DHCP port goes with it, and with it the last address.
    for (const port of ports) await cloud.neutron.deletePort(port.id);
    assert.equal(await cloud.neutron.deleteNetwork(networkId), true);
    assert.deepEqual(await cloud.neutron.listPorts({ networkId }), []);
    assert.deepEqual(await cloud.neutron.listIpAllocations(networkId), []);

    // Served for a network that no longer exists: the audit given neutron-server's networks finds it all.
    const stray = await host.auditLeaks([], []);
    assert.deepEqual(
      stray.map((f) => `${f.kind}:${f.id}`).sort(),
      [
        `bridge:${bridgeName(networkId)}`,
        `dnsmasq:${pid}`,
        `namespace:${dhcpNamespace(networkId)}`,
        `tap:${dhcpVethNames(dhcp.dhcpPortId).bridgeEnd}`,
      ].sort(),
    );
    assert.deepEqual(
      (await auditLeaks(cloud)).map((f) => `${f.kind}:${f.id}`).sort(),
      stray.map((f) => `${f.kind}:${f.id}`).sort(),
      'the cloud audit passes neutron-server’s DHCP networks to the host',
    );

    assert.deepEqual(await host.syncDhcpNetworks([]), { served: [], removed: [networkId] });
    assert.equal(await readLink(bridgeName(networkId)), undefined);
    assert.equal(await readLink(dhcpVethNames(dhcp.dhcpPortId).bridgeEnd), undefined);
    assert.ok(!(await listNamespaces()).includes(dhcpNamespace(networkId)));
    assert.ok(!alive(pid), 'dnsmasq stopped');
    await assert.rejects(access(new DhcpServer(hostDir, networkId).dir));
    assert.deepEqual(await host.listWiredNetworks(), []);
    assert.deepEqual(await host.auditLeaks([], []), []);
  });

  test('the host audit finds a stray tap, bridge, namespace and dnsmasq, and nothing after the clean-up', async () => {
    // Left on purpose, as an agent that lost its records would: devices with this host's marks, no port.
    const strayNetwork: DhcpNetwork = { ...dhcp, networkId: randomUUID(), dhcpPortId: randomUUID() };
    const strayPort = randomUUID();
    await ensureNetwork(hostDir, strayNetwork, []);
    await plugTap(hostDir, strayPort, 'fa:16:3e:12:34:56', strayNetwork.networkId, strayNetwork.mtu);
    const findings = await host.auditLeaks([]);
    const byKind = (kind: string) => findings.filter((f) => f.kind === kind).map((f) => f.id);
    assert.deepEqual(byKind('bridge'), [bridgeName(strayNetwork.networkId)]);
    assert.deepEqual(
      byKind('tap').sort(),
      [tapName(strayPort), dhcpVethNames(strayNetwork.dhcpPortId).bridgeEnd].sort(),
    );
    assert.deepEqual(byKind('namespace'), [dhcpNamespace(strayNetwork.networkId)]);
    const strayPid = await new DhcpServer(hostDir, strayNetwork.networkId).runningPid();
    assert.deepEqual(byKind('dnsmasq'), [String(strayPid)]);
    assert.ok(findings.every((f) => f.host === SPEC.host));
    // The in-process audit opens the host as it recorded itself (host.json names its agent): same findings.
    const recorded = await auditLeaks(cloud);
    assert.deepEqual(
      recorded.map((f) => `${f.kind}:${f.id}`).sort(),
      findings.map((f) => `${f.kind}:${f.id}`).sort(),
    );

    await removeHostDevices(hostDir);
    assert.deepEqual(await host.auditLeaks([]), []);
    assert.equal(await readLink(tapName(strayPort)), undefined);
    assert.equal(await readLink(bridgeName(strayNetwork.networkId)), undefined);
    assert.ok(!(await listNamespaces()).includes(dhcpNamespace(strayNetwork.networkId)));
    assert.ok(strayPid !== undefined && !alive(strayPid));
  });

  test('a plug that fails half way in the kernel removes what it made and keeps no record', async () => {
    // A multicast MAC for the DHCP port: the kernel refuses it after the bridge, namespace and veth exist.
    const broken: DhcpNetwork = {
      ...dhcp,
      networkId: randomUUID(),
      dhcpPortId: randomUUID(),
      dhcpMacAddress: 'ff:ff:ff:ff:ff:ff',
    };
    const portId = randomUUID();
    await assert.rejects(
      host.plugVif({
        id: portId,
        macAddress: 'fa:16:3e:77:77:77',
        deviceId: randomUUID(),
        networkId: broken.networkId,
        fixedIps: [{ subnetId: broken.subnetId, ipAddress: '10.123.45.77' }],
        dhcp: broken,
      }),
      (err: unknown) => isCloudError(err, 'VirtualInterfaceCreateException'),
    );
    assert.deepEqual(await host.listVifs(), []);
    assert.deepEqual(await host.listWiredNetworks(), []);
    assert.equal(await readLink(tapName(portId)), undefined);
    assert.equal(await readLink(bridgeName(broken.networkId)), undefined);
    assert.equal(await readLink(dhcpVethNames(broken.dhcpPortId).bridgeEnd), undefined);
    assert.ok(!(await listNamespaces()).includes(dhcpNamespace(broken.networkId)));
    assert.deepEqual(await host.auditLeaks([]), []);
  });

  test('the host audit finds a QEMU process of this host running no live instance; the clean-up stops it', async () => {
    // A stand-in with a guest's command line (no emulation needed): named guest=instance-<uuid>, its pid
    // file in one of this host's instance directories.
    const uuid = randomUUID();
    const stand = spawn(
      'sh',
      [
        '-c',
        'sleep 600',
        'qemu-system-x86_64',
        '-name',
        `guest=instance-${uuid},debug-threads=on`,
        '-pidfile',
        path.join(hostDir, 'instances', uuid, 'qemu.pid'),
      ],
      { stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => stand.once('exit', resolve));
    try {
      assert.ok(stand.pid !== undefined);
      const qemu = async (live: string[]) =>
        (await host.auditLeaks(live)).filter((f) => f.kind === 'qemu').map((f) => [f.id, f.instanceUuid]);
      assert.deepEqual(await qemu([]), [[String(stand.pid), uuid]]);
      assert.deepEqual(await qemu([uuid]), [], 'a live instance’s guest is not a leak');
      await removeCloudFromMachine(cloud.dataDir);
      await exited;
      assert.ok(!alive(stand.pid));
      assert.deepEqual(await qemu([]), []);
    } finally {
      stand.kill('SIGKILL');
    }
  });

  test('the fake agent records the plug and creates nothing on the machine', async () => {
    const fakeHost = await openComputeHost({
      dataDir: cloud.dataDir,
      host: 'fake-lb',
      capabilities: capabilitiesOf(SPEC),
    });
    const portId = randomUUID();
    const vif = await fakeHost.plugVif({
      id: portId,
      macAddress: 'fa:16:3e:65:43:21',
      deviceId: randomUUID(),
    });
    assert.equal(vif.tap, tapName(portId));
    assert.equal(await readLink(vif.tap), undefined);
    assert.equal(await readLink(vif.bridge), undefined);
    assert.equal(await fakeHost.unplugVif(portId), true);
  });
});
