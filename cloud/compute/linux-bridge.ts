/**
 * The kernel side of the Linux-bridge agent and the DHCP agent on this machine, named as Neutron names them:
 *
 *   brq<network[:11]>      a Linux bridge per network, no uplink, no address (never routed or NATed)
 *   qdhcp-<network>        the DHCP agent's namespace, joined to the bridge by a veth pair
 *   tap<dhcp port[:11]>    the veth's bridge end; ns-<dhcp port[:11]> its end in the namespace, holding the
 *                          DHCP port's address; dnsmasq listens there and serves the subnet statically
 *   tap<port[:11]>         a persistent tap per guest port, on the bridge, for QEMU to open
 *
 * Every device we create carries the alias `bootflow:<host tag>` (a hash of the host directory), so the leak
 * audit and the clean-up tell this host's devices from another cloud's on the same machine. dnsmasq's pid
 * file, hosts file and leases live in `<hostDir>/network/<network id>/`; its command line names them.
 * State is read back with `ip -j`.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { CloudError } from '../errors';
import { sleep } from './file-lock';
import { processAlive } from './image-cache';
import { HostCommandError, ipJson, runCommand } from './host-commands';
import type { DhcpDetails } from '../../common/dhcp';
import { writeFileAtomic } from './state-file';

/** What the DHCP agent needs of a network: one IPv4 subnet and the network's DHCP port (from neutron-server). */
export type DhcpNetwork = DhcpDetails;

export interface HostsEntry {
  macAddress: string;
  ipAddress: string;
}

/** One entry of `ip -j link show` (the fields we read). */
export interface IpLink {
  ifname: string;
  flags?: string[];
  master?: string;
  operstate?: string;
  ifalias?: string;
  address?: string;
  link_type?: string;
}

export function bridgeName(networkId: string): string {
  return `brq${networkId.slice(0, 11)}`;
}

export function tapName(portId: string): string {
  return `tap${portId.slice(0, 11)}`;
}

export function dhcpNamespace(networkId: string): string {
  return `qdhcp-${networkId}`;
}

/** The DHCP port's veth pair: the bridge end and the namespace end (Neutron's BridgeInterfaceDriver). */
export function dhcpVethNames(dhcpPortId: string): { bridgeEnd: string; namespaceEnd: string } {
  const short = dhcpPortId.slice(0, 11);
  return { bridgeEnd: `tap${short}`, namespaceEnd: `ns-${short}` };
}

/** The alias marking this host directory's devices. */
export function hostTag(hostDir: string): string {
  return `bootflow:${createHash('sha256').update(path.resolve(hostDir)).digest('hex').slice(0, 16)}`;
}

/** libvirt gives the host side of a guest's tap the guest's MAC with the first byte fe (the bridge learns none). */
function tapMac(guestMac: string): string {
  return `fe${guestMac.slice(2)}`;
}

function prefixLength(cidr: string): number {
  return Number(cidr.split('/')[1]);
}

function netmask(cidr: string): string {
  const bits = prefixLength(cidr);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (mask >>> shift) & 0xff).join('.');
}

function isMissingDevice(err: unknown): boolean {
  const text = err instanceof HostCommandError ? err.stderr : '';
  return /Cannot find device|does not exist|No such device|not found/i.test(text);
}

function isExisting(err: unknown): boolean {
  const text = err instanceof HostCommandError ? err.stderr : '';
  return /File exists|already exists|already assigned/i.test(text);
}

async function ip(args: string[]): Promise<void> {
  await runCommand('ip', args);
}

/** Runs an `ip` command that creates something; "already exists" is success (a retry, or a crash before). */
async function ipCreate(args: string[]): Promise<void> {
  try {
    await ip(args);
  } catch (err) {
    if (!isExisting(err)) throw err;
  }
}

/** Runs an `ip` command that deletes something; "no such device" is success. */
async function ipDelete(args: string[]): Promise<void> {
  try {
    await ip(args);
  } catch (err) {
    if (!isMissingDevice(err)) throw err;
  }
}

/** The link in the root namespace (or in `namespace`), or undefined when there is none. */
export async function readLink(ifname: string, namespace?: string): Promise<IpLink | undefined> {
  try {
    const links = await ipJson<IpLink>([
      ...(namespace ? ['-n', namespace] : []),
      'link',
      'show',
      'dev',
      ifname,
    ]);
    return links[0];
  } catch (err) {
    if (isMissingDevice(err)) return undefined;
    throw err;
  }
}

export async function listLinks(namespace?: string): Promise<IpLink[]> {
  return ipJson<IpLink>([...(namespace ? ['-n', namespace] : []), 'link', 'show']);
}

export async function listNamespaces(): Promise<string[]> {
  const entries = await ipJson<{ name: string }>(['netns', 'list']);
  return entries.map((e) => e.name).sort();
}

/** A tap is plugged when the kernel says so: on the bridge and administratively up. */
export function isPlugged(link: IpLink | undefined, bridge: string): boolean {
  return link !== undefined && link.master === bridge && (link.flags ?? []).includes('UP');
}

// ---- processes ------------------------------------------------------------------------------------------

/** Command lines of the machine's processes (from /proc), for finding dnsmasq and QEMU by what they run. */
export async function listProcesses(): Promise<Array<{ pid: number; argv: string[] }>> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  for (const name of await readdir('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (raw === '') continue; // kernel thread or a zombie
      out.push({ pid, argv: raw.replace(/\0$/, '').split('\0') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function processArgv(pid: number): Promise<string[] | undefined> {
  try {
    const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return raw === '' ? undefined : raw.replace(/\0$/, '').split('\0');
  } catch {
    return undefined;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 5_000): Promise<void> {
  const alive = () => processAlive(pid);
  if (!alive()) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await sleep(50);
  if (alive()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    while (alive()) await sleep(20);
  }
}

// ---- the DHCP agent's network -------------------------------------------------------------------------

export class DhcpServer {
  readonly dir: string;
  readonly hostsFile: string;
  readonly pidFile: string;
  readonly leaseFile: string;

  constructor(
    hostDir: string,
    readonly networkId: string,
  ) {
    this.dir = path.join(hostDir, 'network', networkId);
    this.hostsFile = path.join(this.dir, 'host');
    this.pidFile = path.join(this.dir, 'dnsmasq.pid');
    this.leaseFile = path.join(this.dir, 'leases');
  }

  /** dnsmasq's pid when it runs and is ours (its command line names our pid file), else undefined. */
  async runningPid(): Promise<number | undefined> {
    let pid: number;
    try {
      pid = Number((await readFile(this.pidFile, 'utf8')).trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const argv = await processArgv(pid);
    return argv?.includes(`--pid-file=${this.pidFile}`) ? pid : undefined;
  }

  async writeHosts(entries: HostsEntry[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    const lines = entries
      .map((e) => `${e.macAddress},${e.ipAddress}`)
      .sort()
      .join('\n');
    await writeFileAtomic(this.hostsFile, lines === '' ? '' : `${lines}\n`);
  }

  /** Starts dnsmasq in the namespace, or makes the running one re-read its hosts file (SIGHUP). */
  async startOrReload(network: DhcpNetwork, interfaceName: string): Promise<number> {
    const running = await this.runningPid();
    if (running !== undefined) {
      process.kill(running, 'SIGHUP');
      return running;
    }
    await rm(this.pidFile, { force: true });
    const range = network.cidr.split('/')[0] as string;
    await runCommand('ip', [
      'netns',
      'exec',
      dhcpNamespace(network.networkId),
      'dnsmasq',
      '--conf-file=/dev/null',
      '--no-hosts',
      '--no-resolv',
      // DHCP only: no DNS service (nothing upstream to resolve with, and guests stay on this machine).
      '--port=0',
      `--pid-file=${this.pidFile}`,
      `--dhcp-hostsfile=${this.hostsFile}`,
      `--dhcp-leasefile=${this.leaseFile}`,
      `--interface=${interfaceName}`,
      '--except-interface=lo',
      '--bind-interfaces',
      // The hosts file is written as root into the host directory; dnsmasq keeps root to re-read it.
      '--user=root',
      `--dhcp-range=set:subnet-${network.subnetId},${range},static,${netmask(network.cidr)},86400s`,
      network.gatewayIp
        ? `--dhcp-option=tag:subnet-${network.subnetId},option:router,${network.gatewayIp}`
        : `--dhcp-option=tag:subnet-${network.subnetId},option:router`,
      `--dhcp-option-force=tag:subnet-${network.subnetId},option:mtu,${network.mtu}`,
      '--dhcp-authoritative',
      `--dhcp-lease-max=${Math.min(2 ** (32 - prefixLength(network.cidr)), 65_536)}`,
    ]);
    const pid = await this.runningPid();
    if (pid === undefined) throw new Error(`dnsmasq for network ${network.networkId} did not start`);
    return pid;
  }

  /** Stops dnsmasq; its directory goes too unless `keepState` (a restart). */
  async stop(options: { keepState?: boolean } = {}): Promise<void> {
    const pid = await this.runningPid();
    if (pid !== undefined) await stopProcess(pid);
    if (!options.keepState) await rm(this.dir, { recursive: true, force: true });
  }

  /** Lease file lines: `<expiry> <mac> <ip> <hostname> <client id>`. */
  private async leaseLines(): Promise<string[]> {
    try {
      return (await readFile(this.leaseFile, 'utf8')).split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }

  async holdsLeaseOf(macs: readonly string[]): Promise<boolean> {
    const wanted = new Set(macs.map((m) => m.toLowerCase()));
    return (await this.leaseLines()).some((line) => wanted.has((line.split(' ')[1] ?? '').toLowerCase()));
  }

  /** Only while dnsmasq is stopped: it reads the lease file when it starts and rewrites it as it runs. */
  async dropLeases(macs: readonly string[]): Promise<void> {
    const unwanted = new Set(macs.map((m) => m.toLowerCase()));
    const kept = (await this.leaseLines()).filter(
      (line) => !unwanted.has((line.split(' ')[1] ?? '').toLowerCase()),
    );
    await writeFileAtomic(this.leaseFile, kept.length === 0 ? '' : `${kept.join('\n')}\n`);
  }
}

/**
 * Brings up the network's bridge, DHCP namespace, veth and address (each step idempotent), writes the hosts
 * file and starts or reloads dnsmasq.
 */
export async function ensureNetwork(
  hostDir: string,
  network: DhcpNetwork,
  hosts: HostsEntry[],
): Promise<void> {
  const tag = hostTag(hostDir);
  const bridge = bridgeName(network.networkId);
  const namespace = dhcpNamespace(network.networkId);
  const veth = dhcpVethNames(network.dhcpPortId);

  const existing = await readLink(bridge);
  if (existing && existing.ifalias !== tag)
    throw new CloudError(
      'VirtualInterfaceCreateException',
      `Bridge ${bridge} of network ${network.networkId} is already wired on this machine by another compute host ` +
        `(${existing.ifalias ?? 'no bootflow mark'}): the linux-bridge agent serves a network from one compute host per machine`,
      { network: network.networkId, bridge },
    );
  if (!existing) await ipCreate(['link', 'add', 'name', bridge, 'type', 'bridge']);
  await ip(['link', 'set', 'dev', bridge, 'alias', tag]);
  await ip(['link', 'set', 'dev', bridge, 'mtu', String(network.mtu), 'up']);

  if (!(await listNamespaces()).includes(namespace)) await ipCreate(['netns', 'add', namespace]);
  await ip(['-n', namespace, 'link', 'set', 'dev', 'lo', 'up']);
  if ((await readLink(veth.namespaceEnd, namespace)) === undefined) {
    // A half-made pair from an interrupted attempt: start over.
    await ipDelete(['link', 'del', 'dev', veth.bridgeEnd]);
    await ip(['link', 'add', 'name', veth.bridgeEnd, 'type', 'veth', 'peer', 'name', veth.namespaceEnd]);
    await ip(['link', 'set', 'dev', veth.namespaceEnd, 'netns', namespace]);
  }
  await ip(['link', 'set', 'dev', veth.bridgeEnd, 'alias', tag]);
  await ip(['link', 'set', 'dev', veth.bridgeEnd, 'mtu', String(network.mtu), 'master', bridge, 'up']);
  await ip(['-n', namespace, 'link', 'set', 'dev', veth.namespaceEnd, 'alias', tag]);
  await ip([
    '-n',
    namespace,
    'link',
    'set',
    'dev',
    veth.namespaceEnd,
    'address',
    network.dhcpMacAddress,
    'mtu',
    String(network.mtu),
    'up',
  ]);
  await ipCreate([
    '-n',
    namespace,
    'addr',
    'add',
    `${network.dhcpIpAddress}/${prefixLength(network.cidr)}`,
    'dev',
    veth.namespaceEnd,
  ]);

  const server = new DhcpServer(hostDir, network.networkId);
  await server.writeHosts(hosts);
  await server.startOrReload(network, veth.namespaceEnd);
}

/**
 * Rewrites the hosts file and makes dnsmasq re-read it (SIGHUP). The leases of `forgottenMacs` (unplugged
 * ports) go too: dnsmasq keeps leases in memory and would refuse their addresses to the next port's MAC (the
 * IPAM hands freed addresses out again) until they expired. As Neutron's dhcp_release does for a deleted
 * port, but by restarting dnsmasq with them gone from its lease file (dnsmasq-base has no dhcp_release).
 */
export async function reloadHosts(
  hostDir: string,
  network: DhcpNetwork,
  hosts: HostsEntry[],
  forgottenMacs: readonly string[] = [],
): Promise<void> {
  const server = new DhcpServer(hostDir, network.networkId);
  await server.writeHosts(hosts);
  if (await server.holdsLeaseOf(forgottenMacs)) {
    await server.stop({ keepState: true });
    await server.dropLeases(forgottenMacs);
    await server.startOrReload(network, dhcpVethNames(network.dhcpPortId).namespaceEnd);
    return;
  }
  const pid = await server.runningPid();
  if (pid !== undefined) process.kill(pid, 'SIGHUP');
}

/**
 * Stops dnsmasq and removes the namespace (and with it the veth), the bridge and the state directory: only
 * what is this host's (its alias), never another host's devices of the same network on this machine.
 */
export async function removeNetwork(hostDir: string, networkId: string, dhcpPortId?: string): Promise<void> {
  const tag = hostTag(hostDir);
  await new DhcpServer(hostDir, networkId).stop();
  const namespace = dhcpNamespace(networkId);
  if ((await listNamespaces()).includes(namespace)) {
    const foreign = (await listLinks(namespace)).some((l) => l.ifalias !== undefined && l.ifalias !== tag);
    if (!foreign) await ipDelete(['netns', 'del', namespace]);
  }
  const mine = async (ifname: string) => (await readLink(ifname))?.ifalias === tag;
  if (dhcpPortId && (await mine(dhcpVethNames(dhcpPortId).bridgeEnd)))
    await ipDelete(['link', 'del', 'dev', dhcpVethNames(dhcpPortId).bridgeEnd]);
  if (await mine(bridgeName(networkId))) await ipDelete(['link', 'del', 'dev', bridgeName(networkId)]);
}

/** A persistent tap for the port, on the network's bridge and up; returns the link as the kernel reports it. */
export async function plugTap(
  hostDir: string,
  portId: string,
  macAddress: string,
  networkId: string,
  mtu: number,
): Promise<IpLink | undefined> {
  const tap = tapName(portId);
  await ipCreate(['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await ip(['link', 'set', 'dev', tap, 'alias', hostTag(hostDir)]);
  await ip([
    'link',
    'set',
    'dev',
    tap,
    'address',
    tapMac(macAddress),
    'mtu',
    String(mtu),
    'master',
    bridgeName(networkId),
    'up',
  ]);
  return readLink(tap);
}

/** Removes the port's tap when it is this host's (or unmarked: a plug interrupted before marking it). */
export async function removeTap(hostDir: string, portId: string): Promise<void> {
  const link = await readLink(tapName(portId));
  if (link && (link.ifalias === undefined || link.ifalias === hostTag(hostDir)))
    await ipDelete(['link', 'del', 'dev', tapName(portId)]);
}

// ---- what this host has on the machine (the audit and the clean-up) -----------------------------------

export interface HostDevices {
  /** Root-namespace links carrying this host's alias: bridges, taps, veth ends. */
  links: IpLink[];
  /** DHCP namespaces holding a link with this host's alias. */
  namespaces: string[];
  /** dnsmasq processes whose pid file is in this host directory. */
  dnsmasq: Array<{ pid: number; networkId: string }>;
}

export async function listHostDevices(hostDir: string): Promise<HostDevices> {
  const tag = hostTag(hostDir);
  const links = (await listLinks()).filter((l) => l.ifalias === tag);
  const namespaces: string[] = [];
  for (const namespace of await listNamespaces()) {
    if (!namespace.startsWith('qdhcp-')) continue;
    try {
      if ((await listLinks(namespace)).some((l) => l.ifalias === tag)) namespaces.push(namespace);
    } catch {
      // removed meanwhile
    }
  }
  const prefix = `--pid-file=${path.join(path.resolve(hostDir), 'network')}/`;
  const dnsmasq = (await listProcesses())
    .filter((p) => path.basename(p.argv[0] ?? '') === 'dnsmasq')
    .flatMap((p) => {
      const arg = p.argv.find((a) => a.startsWith(prefix));
      return arg
        ? [{ pid: p.pid, networkId: path.basename(path.dirname(arg.slice('--pid-file='.length))) }]
        : [];
    });
  return { links, namespaces, dnsmasq };
}

/**
 * Removes every device, namespace and dnsmasq of this host directory from the machine, whatever state says:
 * the clean-up after a test run (even a failed one) and after a host is decommissioned.
 */
export async function removeHostDevices(hostDir: string): Promise<void> {
  const found = await listHostDevices(hostDir);
  for (const { pid } of found.dnsmasq) await stopProcess(pid);
  for (const namespace of found.namespaces) await ipDelete(['netns', 'del', namespace]);
  for (const link of found.links) await ipDelete(['link', 'del', 'dev', link.ifname]);
  await rm(path.join(hostDir, 'network'), { recursive: true, force: true });
}
