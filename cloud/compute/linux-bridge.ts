/**
 * The kernel side of the Linux-bridge agent and the DHCP agent on this machine, named as Neutron names them:
 *
 *   brq<network[:11]>      a Linux bridge per network, no uplink, no address (never routed or NATed)
 *   qdhcp-<network>        the DHCP agent's namespace, joined to the bridge by a veth pair
 *   tap<dhcp port[:11]>    the veth's bridge end; ns-<dhcp port[:11]> its end in the namespace, holding the
 *                          DHCP port's address; dnsmasq listens there and serves the subnet statically
 *   tap<port[:11]>         a persistent tap per guest port, on the bridge, for QEMU to open
 *
 * The compute hosts of one cloud on one machine share a kernel, so they share each network's bridge, DHCP
 * namespace, veth and dnsmasq (one L2 segment per network per machine), each host plugging its own taps:
 * the shared devices carry the alias `bootflow:<hash of the cloud's shared directory>` (`networkTag`), a
 * host's taps `bootflow:<hash of its host directory>` (`hostTag`), so the leak audit and the clean-up tell
 * them from another cloud's on the same machine. The shared directory is `<hosts dir>/_network/` beside
 * the host directories (no host name starts with `_`): per network, dnsmasq's pid file, leases and hosts file,
 * and `hosts.d/<host>`, each host's `MAC,IP` lines, which are also the reference count (the last host to
 * leave removes the network's devices). Changes to a network's shared state hold a lock across processes
 * (`<network id>.lock`). State is read back with `ip -j`.
 */
import { createHash } from 'node:crypto';
import { access, mkdir, readdir, readFile, readlink, rm } from 'node:fs/promises';
import path from 'node:path';
import { CloudError } from '../errors';
import { sleep, withFileLock } from './file-lock';
import { processAlive } from './image-cache';
import { HostCommandError, ipBatch, ipJson, runCommand } from './host-commands';
import type { DhcpDetails } from '../../common/dhcp';
import { writeFileAtomic } from './state-file';
import { timedStep } from './step-timings';

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

/** Where `ip netns add` puts a namespace's file. */
const NETNS_RUN_DIR = '/run/netns';

function tagOf(dir: string): string {
  return `bootflow:${createHash('sha256').update(path.resolve(dir)).digest('hex').slice(0, 16)}`;
}

/** The alias marking this host directory's own devices (its taps). */
export function hostTag(hostDir: string): string {
  return tagOf(hostDir);
}

/** The directory the linux-bridge hosts of one cloud on this machine share: beside their host directories. */
export const SHARED_NETWORK_DIR = '_network';
export function sharedNetworkRoot(hostDir: string): string {
  return path.join(path.dirname(path.resolve(hostDir)), SHARED_NETWORK_DIR);
}

/** The alias of the devices this host's cloud shares on the machine: a network's bridge, veth, namespace. */
export function networkTag(hostDir: string): string {
  return tagOf(sharedNetworkRoot(hostDir));
}

/** The name a host goes by in a shared network's member list. */
function memberName(hostDir: string): string {
  return path.basename(path.resolve(hostDir));
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

async function ip(args: string[]): Promise<void> {
  await runCommand('ip', args);
}

/** Runs an `ip` command that deletes something; "no such device" is success. */
async function ipDelete(args: string[]): Promise<void> {
  try {
    await ip(args);
  } catch (err) {
    if (!isMissingDevice(err)) throw err;
  }
}

/** Where the kernel shows the root namespace's links (the namespace this process runs in). */
const SYSFS_NET = '/sys/class/net';
/** IFF_UP in a link's `flags` file. */
const IFF_UP = 0x1;

/**
 * The link in the root namespace (read from sysfs: no process, which a loaded host makes every plug wait
 * for), or in `namespace` (`ip -n`); undefined when there is none. From sysfs `flags` holds `UP` or nothing.
 */
export async function readLink(ifname: string, namespace?: string): Promise<IpLink | undefined> {
  if (namespace === undefined) return readRootLink(ifname);
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

async function readRootLink(ifname: string): Promise<IpLink | undefined> {
  if (ifname === '' || ifname.includes('/') || ifname.startsWith('.')) return undefined;
  const dir = path.join(SYSFS_NET, ifname);
  const read = (file: string) => readFile(path.join(dir, file), 'utf8').then((text) => text.trim());
  let flags: string;
  try {
    flags = await read('flags');
  } catch {
    return undefined;
  }
  const [master, operstate, ifalias, address] = await Promise.all([
    readlink(path.join(dir, 'master')).then(path.basename, () => undefined),
    read('operstate').catch(() => undefined),
    read('ifalias').catch(() => ''),
    read('address').catch(() => undefined),
  ]);
  return {
    ifname,
    flags: Number(flags) & IFF_UP ? ['UP'] : [],
    ...(master ? { master } : {}),
    ...(operstate ? { operstate: operstate.toUpperCase() } : {}),
    ...(ifalias ? { ifalias } : {}),
    ...(address ? { address } : {}),
  };
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

/**
 * The hosts files are not fsynced: each host's lines are rebuilt from its agent's records (fsynced, in
 * `state/network-agent.json`) when the agent starts (`NetworkAgent.initHost`), so a machine crash that
 * loses them loses nothing.
 */
const NO_FSYNC = { fsync: false } as const;

/** A network's dnsmasq and its files, shared by the cloud's hosts on this machine. */
export class DhcpServer {
  readonly dir: string;
  /** What dnsmasq reads: the union of the members' lines. */
  readonly hostsFile: string;
  /** One file per host using the network (its ports' lines): the network's reference count. */
  readonly membersDir: string;
  readonly pidFile: string;
  readonly leaseFile: string;
  readonly lockPath: string;

  /** `dir` is a host directory of the cloud, or (`'shared-root'`) the cloud's shared network directory. */
  constructor(
    dir: string,
    readonly networkId: string,
    dirIs: 'host-dir' | 'shared-root' = 'host-dir',
  ) {
    const root = dirIs === 'shared-root' ? path.resolve(dir) : sharedNetworkRoot(dir);
    this.dir = path.join(root, networkId);
    this.hostsFile = path.join(this.dir, 'host');
    this.membersDir = path.join(this.dir, 'hosts.d');
    this.pidFile = path.join(this.dir, 'dnsmasq.pid');
    this.leaseFile = path.join(this.dir, 'leases');
    this.lockPath = path.join(root, `${networkId}.lock`);
  }

  /** Runs fn holding the network's lock (every host process of the cloud on this machine takes it). */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    await mkdir(path.dirname(this.lockPath), { recursive: true, mode: 0o755 });
    const result = await withFileLock(this.lockPath, async () => ({ value: await fn() }), {
      waitMs: 120_000,
    });
    if (!result) throw new Error(`lock ${this.lockPath} was not taken`);
    return result.value;
  }

  /** The hosts using the network on this machine. */
  async members(): Promise<string[]> {
    try {
      return (await readdir(this.membersDir)).filter((name) => !name.endsWith('.tmp')).sort();
    } catch {
      return [];
    }
  }

  /** Sets one host's lines (it becomes a member) and rewrites the union dnsmasq reads. */
  async writeMemberHosts(member: string, entries: HostsEntry[]): Promise<void> {
    await mkdir(this.membersDir, { recursive: true, mode: 0o755 });
    const lines = entries.map((e) => `${e.macAddress},${e.ipAddress}`).sort();
    await writeFileAtomic(path.join(this.membersDir, member), lines.map((l) => `${l}\n`).join(''), NO_FSYNC);
    await this.writeUnion();
  }

  /** Drops one host's lines (it is no longer a member) and rewrites the union. */
  async removeMember(member: string): Promise<void> {
    await rm(path.join(this.membersDir, member), { force: true });
    await this.writeUnion();
  }

  private async writeUnion(): Promise<void> {
    const lines: string[] = [];
    for (const member of await this.members())
      lines.push(...(await readFile(path.join(this.membersDir, member), 'utf8')).split('\n').filter(Boolean));
    await mkdir(this.dir, { recursive: true, mode: 0o755 });
    await writeFileAtomic(
      this.hostsFile,
      lines
        .sort()
        .map((l) => `${l}\n`)
        .join(''),
      NO_FSYNC,
    );
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
 * Brings up the network's bridge, DHCP namespace, veth and address (each step idempotent; shared with the
 * cloud's other hosts on this machine) and, when given, a port's tap on the bridge in the same `ip` batch;
 * sets this host's lines of the hosts file (making it a member) and starts or reloads dnsmasq.
 */
export async function ensureNetwork(
  hostDir: string,
  network: DhcpNetwork,
  hosts: HostsEntry[],
  tap?: TapPlug,
): Promise<void> {
  const server = new DhcpServer(hostDir, network.networkId);
  await server.locked(async () => {
    const serving = await servingPid(hostDir, network, server);
    if (serving === undefined) await wireNetwork(hostDir, network, tap);
    else if (tap)
      await timedStep('plug: ip batch for the tap (network already served)', async () =>
        ipBatch(await tapCommands(hostDir, tap, network)),
      );
    await server.writeMemberHosts(memberName(hostDir), hosts);
    await timedStep('plug: dnsmasq started or reloaded', async () => {
      if (serving === undefined)
        return server.startOrReload(network, dhcpVethNames(network.dhcpPortId).namespaceEnd);
      process.kill(serving, 'SIGHUP');
      return serving;
    });
  });
}

/**
 * dnsmasq's pid when the network is served already (the DHCP agent keeps a network's namespace and dnsmasq
 * while it has a DHCP subnet): the bridge ours and up, the DHCP veth's bridge end on it and up, the namespace
 * there and dnsmasq running (started only once the namespace's side was configured). All read without a
 * process (sysfs, /run/netns, /proc); undefined sends the plug down the full, idempotent path.
 */
async function servingPid(
  hostDir: string,
  network: DhcpNetwork,
  server: DhcpServer,
): Promise<number | undefined> {
  const bridge = bridgeName(network.networkId);
  const [bridgeLink, vethEnd, namespaceExists] = await Promise.all([
    readLink(bridge),
    readLink(dhcpVethNames(network.dhcpPortId).bridgeEnd),
    namespaceFileExists(dhcpNamespace(network.networkId)),
  ]);
  const up = (link: IpLink | undefined) => (link?.flags ?? []).includes('UP');
  if (bridgeLink?.ifalias !== networkTag(hostDir) || !up(bridgeLink)) return undefined;
  if (!isPlugged(vethEnd, bridge) || !namespaceExists) return undefined;
  return server.runningPid();
}

/** The `ip` commands for a port's tap: made when missing, marked as this host's, on the bridge and up. */
async function tapCommands(hostDir: string, tap: TapPlug, network: DhcpNetwork): Promise<string[][]> {
  const name = tapName(tap.portId);
  return [
    ...((await readLink(name)) ? [] : [['tuntap', 'add', 'dev', name, 'mode', 'tap']]),
    ...configureTap(hostDir, tap.portId, tap.macAddress, network.networkId, network.mtu),
  ];
}

/**
 * The network's devices in two `ip` processes whatever is missing (the links read from sysfs first): one
 * batch in the root namespace (bridge, namespace, the veth with its peer made inside it) and one in the
 * namespace.
 * Every step is idempotent, so a retry after a crash half way finishes the job.
 */
async function wireNetwork(hostDir: string, network: DhcpNetwork, tap?: TapPlug): Promise<void> {
  const tag = networkTag(hostDir);
  const bridge = bridgeName(network.networkId);
  const namespace = dhcpNamespace(network.networkId);
  const veth = dhcpVethNames(network.dhcpPortId);
  const mtu = String(network.mtu);

  // The links this needs, from sysfs (no `ip` process).
  const [existing, halfMadeVeth] = await Promise.all([readLink(bridge), readLink(veth.bridgeEnd)]);
  if (existing && existing.ifalias !== tag)
    throw new CloudError(
      'VirtualInterfaceCreateException',
      `Bridge ${bridge} of network ${network.networkId} is already wired on this machine by another cloud ` +
        `(${existing.ifalias ?? 'no bootflow mark'}): a network's bridge is shared only by the hosts of one cloud`,
      { network: network.networkId, bridge },
    );
  const namespaceExists = await namespaceFileExists(namespace);
  const pairExists = namespaceExists && (await readLink(veth.namespaceEnd, namespace)) !== undefined;

  const root: string[][] = [];
  if (!existing) root.push(['link', 'add', 'name', bridge, 'type', 'bridge']);
  root.push(['link', 'set', 'dev', bridge, 'alias', tag], ['link', 'set', 'dev', bridge, 'mtu', mtu, 'up']);
  if (!namespaceExists) root.push(['netns', 'add', namespace]);
  if (!pairExists) {
    // A half-made pair from an interrupted attempt: start over.
    if (halfMadeVeth) root.push(['link', 'del', 'dev', veth.bridgeEnd]);
    root.push([
      'link',
      'add',
      'name',
      veth.bridgeEnd,
      'type',
      'veth',
      'peer',
      'name',
      veth.namespaceEnd,
      'netns',
      namespace,
    ]);
  }
  root.push(
    ['link', 'set', 'dev', veth.bridgeEnd, 'alias', tag],
    ['link', 'set', 'dev', veth.bridgeEnd, 'mtu', mtu, 'master', bridge, 'up'],
  );
  if (tap) root.push(...(await tapCommands(hostDir, tap, network)));
  await timedStep('plug: ip batch in the root namespace', () => ipBatch(root));
  await timedStep('plug: ip batch in the qdhcp namespace', () =>
    ipBatch(
      [
        ['link', 'set', 'dev', 'lo', 'up'],
        ['link', 'set', 'dev', veth.namespaceEnd, 'alias', tag],
        ['link', 'set', 'dev', veth.namespaceEnd, 'address', network.dhcpMacAddress, 'mtu', mtu, 'up'],
        [
          'addr',
          'replace',
          `${network.dhcpIpAddress}/${prefixLength(network.cidr)}`,
          'dev',
          veth.namespaceEnd,
        ],
      ],
      { namespace },
    ),
  );
}

/** Whether `ip netns` knows the namespace: its file in /run/netns (what `ip netns list` reads), no process. */
async function namespaceFileExists(namespace: string): Promise<boolean> {
  try {
    await access(path.join(NETNS_RUN_DIR, namespace));
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes dnsmasq serve the hosts file as it is now. The leases of `forgottenMacs` (unplugged ports) go too:
 * dnsmasq keeps leases in memory and would refuse their addresses to the next port's MAC (the IPAM hands
 * freed addresses out again) until they expired. As Neutron's dhcp_release does for a deleted port, but by
 * restarting dnsmasq with them gone from its lease file (dnsmasq-base has no dhcp_release).
 */
async function applyHosts(
  server: DhcpServer,
  network: DhcpNetwork,
  forgottenMacs: readonly string[],
): Promise<void> {
  if (await server.holdsLeaseOf(forgottenMacs)) {
    await server.stop({ keepState: true });
    await server.dropLeases(forgottenMacs);
    await server.startOrReload(network, dhcpVethNames(network.dhcpPortId).namespaceEnd);
    return;
  }
  const pid = await server.runningPid();
  if (pid !== undefined) process.kill(pid, 'SIGHUP');
}

/** Rewrites this host's lines of the hosts file and makes dnsmasq re-read it, releasing forgotten leases. */
export async function reloadHosts(
  hostDir: string,
  network: DhcpNetwork,
  hosts: HostsEntry[],
  forgottenMacs: readonly string[] = [],
): Promise<void> {
  const server = new DhcpServer(hostDir, network.networkId);
  await server.locked(async () => {
    await server.writeMemberHosts(memberName(hostDir), hosts);
    await applyHosts(server, network, forgottenMacs);
  });
}

/**
 * This host leaves the network (the network or its DHCP subnet is gone, or a plug that wired it failed).
 * The last host of the cloud on this machine to leave stops dnsmasq and removes the namespace (and with it
 * the veth), the bridge and the state directory; while others remain, dnsmasq serves on without this host's
 * lines (and leases).
 */
export async function removeNetwork(
  hostDir: string,
  network: DhcpNetwork,
  forgottenMacs: readonly string[] = [],
): Promise<void> {
  const server = new DhcpServer(hostDir, network.networkId);
  await server.locked(async () => {
    await server.removeMember(memberName(hostDir));
    if ((await server.members()).length > 0) await applyHosts(server, network, forgottenMacs);
    else await removeNetworkDevices(hostDir, network.networkId);
  });
}

/** Stops the network's dnsmasq, removes its namespace, the veth and bridge of this cloud, and its directory. */
async function removeNetworkDevices(hostDir: string, networkId: string): Promise<void> {
  const tag = networkTag(hostDir);
  await new DhcpServer(hostDir, networkId).stop();
  const namespace = dhcpNamespace(networkId);
  if ((await listNamespaces()).includes(namespace)) {
    const foreign = (await listLinks(namespace)).some((l) => l.ifalias !== undefined && l.ifalias !== tag);
    if (!foreign) await ipDelete(['netns', 'del', namespace]);
  }
  const bridge = bridgeName(networkId);
  // The veth's bridge end went with its peer in the namespace; one left half made is on the bridge or alone.
  for (const link of await listLinks())
    if (link.ifalias === tag && (link.ifname === bridge || link.master === bridge))
      await ipDelete(['link', 'del', 'dev', link.ifname]);
}

/**
 * A persistent tap for the port, on the network's bridge and up (one `ip` batch); returns the link as the
 * kernel reports it.
 */
export async function plugTap(
  hostDir: string,
  portId: string,
  macAddress: string,
  networkId: string,
  mtu: number,
): Promise<IpLink | undefined> {
  const tap = tapName(portId);
  const configure = configureTap(hostDir, portId, macAddress, networkId, mtu);
  try {
    await ipBatch([['tuntap', 'add', 'dev', tap, 'mode', 'tap'], ...configure]);
  } catch (err) {
    // A repeat: the persistent tap is there already (the kernel answers busy for it, or exists).
    const repeat =
      err instanceof HostCommandError && err.argv.includes('tuntap') && /busy|exists/i.test(err.stderr);
    if (!repeat) throw err;
    await ipBatch(configure);
  }
  return readLink(tap);
}

/** A guest port's tap to plug on the network's bridge while the network is wired (in the same batch). */
export interface TapPlug {
  portId: string;
  macAddress: string;
}

/** The `ip` commands that mark an existing tap as this host's and put it on the bridge, up. */
function configureTap(
  hostDir: string,
  portId: string,
  macAddress: string,
  networkId: string,
  mtu: number,
): string[][] {
  const tap = tapName(portId);
  return [
    ['link', 'set', 'dev', tap, 'alias', hostTag(hostDir)],
    [
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
    ],
  ];
}

/** Removes the port's tap when it is this host's (or unmarked: a plug interrupted before marking it). */
export async function removeTap(hostDir: string, portId: string): Promise<void> {
  const link = await readLink(tapName(portId));
  if (link && (link.ifalias === undefined || link.ifalias === hostTag(hostDir)))
    await ipDelete(['link', 'del', 'dev', tapName(portId)]);
}

// ---- what this host has on the machine (the audit and the clean-up) -----------------------------------

export interface SharedNetworkState {
  networkId: string;
  /** The hosts of this cloud using it on this machine (its `hosts.d/`). */
  members: string[];
}

export interface HostDevices {
  /** This host's name among a shared network's members. */
  member: string;
  /** Root-namespace links carrying this host's alias (its taps). */
  links: IpLink[];
  /** Root-namespace links this cloud's hosts share: networks' bridges and DHCP veth ends. */
  sharedLinks: IpLink[];
  /** DHCP namespaces holding a link with this cloud's shared alias. */
  namespaces: string[];
  /** dnsmasq processes whose pid file is in the cloud's shared network directory. */
  dnsmasq: Array<{ pid: number; networkId: string }>;
  /** The shared network directories and who uses each. */
  networks: SharedNetworkState[];
}

async function dnsmasqUnder(dir: string): Promise<Array<{ pid: number; networkId: string }>> {
  const prefix = `--pid-file=${path.resolve(dir)}/`;
  return (await listProcesses())
    .filter((p) => path.basename(p.argv[0] ?? '') === 'dnsmasq')
    .flatMap((p) => {
      const arg = p.argv.find((a) => a.startsWith(prefix));
      return arg
        ? [{ pid: p.pid, networkId: path.basename(path.dirname(arg.slice('--pid-file='.length))) }]
        : [];
    });
}

export async function listHostDevices(hostDir: string): Promise<HostDevices> {
  return listDevices(sharedNetworkRoot(hostDir), memberName(hostDir), hostTag(hostDir));
}

/** What carries the marks of a cloud's shared network directory `root` (and of one host of it, `mine`). */
async function listDevices(root: string, member: string, mine: string | undefined): Promise<HostDevices> {
  const shared = tagOf(root);
  const all = await listLinks();
  const namespaces: string[] = [];
  for (const namespace of await listNamespaces()) {
    if (!namespace.startsWith('qdhcp-')) continue;
    try {
      if ((await listLinks(namespace)).some((l) => l.ifalias === shared)) namespaces.push(namespace);
    } catch {
      // removed meanwhile
    }
  }
  const networks: SharedNetworkState[] = [];
  let entries: string[] = [];
  try {
    // Network directories only: a held lock is a directory too (`<network id>.lock`, proper-lockfile's).
    entries = (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && !e.name.endsWith('.lock'))
      .map((e) => e.name);
  } catch {
    // no network wired yet
  }
  for (const networkId of entries.sort())
    networks.push({ networkId, members: await new DhcpServer(root, networkId, 'shared-root').members() });
  return {
    member,
    links: mine === undefined ? [] : all.filter((l) => l.ifalias === mine),
    sharedLinks: all.filter((l) => l.ifalias === shared),
    namespaces,
    dnsmasq: await dnsmasqUnder(root),
    networks,
  };
}

/**
 * The shared networks no host accounts for: not wired here (`wiredHere`) and used by no other host of the
 * cloud on this machine, or (when neutron-server's list is given, `existing`) wired here for a network that
 * is gone. Bridges carry only the network id's first 11 characters, so they match by prefix.
 */
export function unaccountedNetworks(
  found: HostDevices,
  wiredHere: ReadonlySet<string>,
  existing?: ReadonlySet<string>,
) {
  const accounted = new Set(wiredHere);
  const heldByOthers = new Set(
    found.networks.filter((n) => n.members.some((m) => m !== found.member)).map((n) => n.networkId),
  );
  for (const id of heldByOthers) accounted.add(id);
  // A gone network's devices are reported by the hosts that serve it (or by every host when none does).
  if (existing)
    for (const id of accounted)
      if (!existing.has(id) && (wiredHere.has(id) || !heldByOthers.has(id))) accounted.delete(id);
  const networkOk = (networkId: string) => accounted.has(networkId);
  const bridgeOk = (bridge: string) => [...accounted].some((id) => bridgeName(id) === bridge);
  return {
    bridges: found.sharedLinks.filter((l) => l.ifname.startsWith('brq') && !bridgeOk(l.ifname)),
    vethEnds: found.sharedLinks.filter(
      (l) => !l.ifname.startsWith('brq') && !(l.master !== undefined && bridgeOk(l.master)),
    ),
    namespaces: found.namespaces.filter((ns) => !networkOk(ns.slice('qdhcp-'.length))),
    dnsmasq: found.dnsmasq.filter((d) => !networkOk(d.networkId)),
    directories: found.networks.filter((n) => !networkOk(n.networkId)).map((n) => n.networkId),
  };
}

/**
 * Removes this host's devices from the machine, whatever state says (the clean-up after a test run, even a
 * failed one, and after a host is decommissioned): its taps, its membership of the shared networks, and the
 * shared devices no other host of the cloud uses any more.
 */
export async function removeHostDevices(hostDir: string): Promise<void> {
  const before = await listHostDevices(hostDir);
  for (const link of before.links) await ipDelete(['link', 'del', 'dev', link.ifname]);
  for (const network of before.networks) {
    if (!network.members.includes(before.member)) continue;
    const server = new DhcpServer(hostDir, network.networkId);
    await server.locked(() => server.removeMember(before.member));
  }
  const after = await listHostDevices(hostDir);
  await removeUnaccounted(sharedNetworkRoot(hostDir), unaccountedNetworks(after, new Set()));
  // Where dnsmasq's files were kept before networks were shared.
  await rm(path.join(hostDir, 'network'), { recursive: true, force: true });
}

/**
 * Removes every shared network device of the cloud whose host directories are in `hostsRoot`
 * (`<dataDir>/hosts`), used or not: the cloud's own clean-up, after its hosts'.
 */
export async function removeSharedNetworks(hostsRoot: string): Promise<void> {
  const root = path.join(path.resolve(hostsRoot), SHARED_NETWORK_DIR);
  const found = await listDevices(root, '', undefined);
  const nobody = { ...found, networks: found.networks.map((n) => ({ ...n, members: [] })) };
  await removeUnaccounted(root, unaccountedNetworks(nobody, new Set()));
}

async function removeUnaccounted(root: string, stray: ReturnType<typeof unaccountedNetworks>): Promise<void> {
  for (const { pid } of stray.dnsmasq) await stopProcess(pid);
  for (const namespace of stray.namespaces) await ipDelete(['netns', 'del', namespace]);
  for (const link of [...stray.vethEnds, ...stray.bridges])
    await ipDelete(['link', 'del', 'dev', link.ifname]);
  for (const networkId of stray.directories)
    await rm(new DhcpServer(root, networkId, 'shared-root').dir, { recursive: true, force: true });
}
