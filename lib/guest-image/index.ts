/**
 * The bootflow guest image, built on this machine from Debian packages (cirros-like, a few seconds): the
 * Debian cloud kernel (`apt-get download`, unpacked with `dpkg-deb -x`, never installed), an initramfs of
 * busybox-static, the virtio drivers and an init script (./init.sh), and a small blank machine disk. Glance
 * holds them as an AMI-style triple (aki, ari, ami). Cached by kernel package and scripts under
 * `BOOTFLOW_GUEST_CACHE` (default `<repo>/.cache/guest-image`), so a second build is a lookup.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { runCommand } from '../../cloud/compute/host-commands';
import { PROJECT_ROOT } from '../temporal-binaries';

/**
 * Debian packages the guest image, the qemu driver and the linux-bridge agent it runs with need
 * (`apt-get install --no-install-recommends`).
 */
export const GUEST_PACKAGES = [
  'qemu-system-x86',
  'qemu-utils',
  'busybox-static',
  'dnsmasq-base',
  'iproute2',
  'cpio',
] as const;
export const INSTALL_COMMAND = `apt-get install -y --no-install-recommends ${GUEST_PACKAGES.join(' ')}`;

/** The kernel meta-package; its one dependency names the current kernel (the cache key). */
const KERNEL_META_PACKAGE = 'linux-image-cloud-amd64';

/**
 * Loaded in this order by the init script (no depmod in the initramfs): the ring first (the core uses it), the
 * PCI transport, then the NIC (after failover, which virtio_net uses), the disk, and the ACPI power
 * button with evdev so acpid sees its events.
 */
export const GUEST_MODULES = [
  'drivers/virtio/virtio_ring',
  'drivers/virtio/virtio',
  'drivers/virtio/virtio_pci_legacy_dev',
  'drivers/virtio/virtio_pci_modern_dev',
  'drivers/virtio/virtio_pci',
  'net/core/failover',
  'drivers/net/net_failover',
  'drivers/net/virtio_net',
  'drivers/block/virtio_blk',
  'drivers/acpi/button',
  'drivers/input/evdev',
] as const;

const SCRIPTS = {
  init: 'init.sh',
  dhcpEvent: 'udhcpc.sh',
  powerButton: 'power-button.sh',
  pingCgi: 'ping-cgi.sh',
} as const;
/** Where the guest's shell scripts are: the sources' folder, also when this runs from the compiled dist/. */
const SCRIPTS_DIR = path.join(PROJECT_ROOT, 'lib', 'guest-image');
const MACHINE_DISK_BYTES = 1024 * 1024;

export interface GuestImage {
  /** Names the build: `<kernel package>-<scripts hash>` (Glance's `bootflow_guest_build` property). */
  build: string;
  /** e.g. linux-image-6.1.0-57-cloud-amd64 */
  kernelPackage: string;
  kernelPath: string;
  ramdiskPath: string;
  /** The machine image (ami): a small blank raw disk; the guest runs from its initramfs. */
  diskPath: string;
  dir: string;
}

export function defaultGuestCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BOOTFLOW_GUEST_CACHE ?? path.join(PROJECT_ROOT, '.cache', 'guest-image');
}

/** The tools building the guest image needs, each with the package that brings it. */
const IMAGE_TOOLS: ReadonlyArray<readonly [string, string]> = [
  ['qemu-system-x86_64', 'qemu-system-x86'],
  ['qemu-img', 'qemu-utils'],
  ['busybox', 'busybox-static'],
  ['cpio', 'cpio'],
  ['dpkg-deb', 'dpkg'],
  ['apt-get', 'apt'],
];
/** And what running the guests needs beside them: the linux-bridge agent's `ip` and its DHCP server. */
const GUEST_RUN_TOOLS: ReadonlyArray<readonly [string, string]> = [
  ['ip', 'iproute2'],
  ['dnsmasq', 'dnsmasq-base'],
];

/**
 * What is missing on this machine to build the guest image and run guests (the qemu driver with the
 * linux-bridge agent), as install hints: `<tool> (<package>)`. `has` looks a tool up (default: on PATH).
 */
export async function missingGuestTools(has: (tool: string) => Promise<boolean> = onPath): Promise<string[]> {
  return missingOf([...IMAGE_TOOLS, ...GUEST_RUN_TOOLS], has);
}

/** What is missing to build the guest image alone. */
export async function missingImageTools(has: (tool: string) => Promise<boolean> = onPath): Promise<string[]> {
  return missingOf(IMAGE_TOOLS, has);
}

async function missingOf(
  checks: ReadonlyArray<readonly [string, string]>,
  has: (tool: string) => Promise<boolean>,
): Promise<string[]> {
  const missing: string[] = [];
  for (const [tool, pkg] of checks) if (!(await has(tool))) missing.push(`${tool} (${pkg})`);
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun (the tun driver)');
  return missing;
}

/** Whether `tool` is on PATH, or in the sbin directories a non-root PATH often lacks (dnsmasq is there). */
export async function onPath(tool: string): Promise<boolean> {
  return runCommand('sh', ['-c', `PATH="$PATH:/usr/sbin:/sbin"; command -v ${tool}`]).then(
    () => true,
    () => false,
  );
}

/** Builds the guest image, or returns the cached build for the current kernel and scripts. */
export async function ensureGuestImage(cacheDir = defaultGuestCacheDir()): Promise<GuestImage> {
  const missing = await missingImageTools();
  if (missing.length > 0)
    throw new Error(`cannot build the guest image, missing: ${missing.join(', ')}; run: ${INSTALL_COMMAND}`);
  const scriptsHash = await hashScripts();
  const kernelPackage = await currentKernelPackage(cacheDir, scriptsHash);
  const dir = path.join(cacheDir, `${kernelPackage}-${scriptsHash}`);
  const image: GuestImage = {
    build: path.basename(dir),
    kernelPackage,
    dir,
    kernelPath: path.join(dir, 'vmlinuz'),
    ramdiskPath: path.join(dir, 'initrd.img'),
    diskPath: path.join(dir, 'disk.img'),
  };
  if (existsSync(path.join(dir, 'manifest.json'))) return image;
  await mkdir(cacheDir, { recursive: true });
  const work = await mkdtemp(path.join(cacheDir, '.build-'));
  try {
    await build(kernelPackage, work);
    await writeFile(
      path.join(work, 'out', 'manifest.json'),
      `${JSON.stringify({ kernelPackage, modules: GUEST_MODULES, builtAt: new Date().toISOString() }, null, 2)}\n`,
    );
    await rm(dir, { recursive: true, force: true });
    await rename(path.join(work, 'out'), dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return image;
}

async function build(kernelPackage: string, work: string): Promise<void> {
  const out = path.join(work, 'out');
  const unpacked = path.join(work, 'kernel');
  const stage = path.join(work, 'initramfs');
  await mkdir(out);
  await runCommand('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', kernelPackage], {
    cwd: work,
    timeoutMs: 300_000,
  });
  const deb = (await readdir(work)).find((f) => f.startsWith(`${kernelPackage}_`) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${kernelPackage} left no .deb`);
  await runCommand('dpkg-deb', ['-x', path.join(work, deb), unpacked]);
  const version = kernelPackage.replace(/^linux-image-/, '');
  await copyFile(path.join(unpacked, 'boot', `vmlinuz-${version}`), path.join(out, 'vmlinuz'));

  for (const sub of [
    'bin',
    'etc/acpi/PWRF',
    'var/www/cgi-bin',
    'lib/modules',
    'proc',
    'sys',
    'dev',
    'run',
    'tmp',
  ])
    await mkdir(path.join(stage, sub), { recursive: true });
  const busybox = (await runCommand('sh', ['-c', 'command -v busybox'])).stdout.trim();
  await copyFile(busybox, path.join(stage, 'bin', 'busybox'));
  await chmod(path.join(stage, 'bin', 'busybox'), 0o755);
  const moduleDir = path.join(unpacked, 'lib', 'modules', version, 'kernel');
  for (const module of GUEST_MODULES)
    await copyFile(
      path.join(moduleDir, `${module}.ko`),
      path.join(stage, 'lib', 'modules', `${path.basename(module)}.ko`),
    );
  await writeFile(
    path.join(stage, 'etc', 'guest-modules'),
    `${GUEST_MODULES.map((m) => path.basename(m)).join('\n')}\n`,
  );
  const install = async (script: string, to: string): Promise<void> => {
    await copyFile(path.join(SCRIPTS_DIR, script), path.join(stage, to));
    await chmod(path.join(stage, to), 0o755);
  };
  await install(SCRIPTS.init, 'init');
  await install(SCRIPTS.dhcpEvent, 'etc/udhcpc.sh');
  await install(SCRIPTS.powerButton, 'etc/acpi/PWRF/00000080');
  await install(SCRIPTS.pingCgi, 'var/www/cgi-bin/ping');
  await runCommand(
    'sh',
    ['-c', `cd "${stage}" && find . | cpio -o -H newc --quiet -R 0:0 | gzip -6 > "${out}/initrd.img"`],
    { timeoutMs: 120_000 },
  );
  await writeFile(path.join(out, 'disk.img'), Buffer.alloc(MACHINE_DISK_BYTES));
}

/**
 * The kernel package the meta-package points at today. Offline (apt-cache knows nothing), the newest
 * cached build with the same scripts is used instead.
 */
async function currentKernelPackage(cacheDir: string, scriptsHash: string): Promise<string> {
  const fromApt = await runCommand('apt-cache', ['depends', KERNEL_META_PACKAGE]).then(
    ({ stdout }) => /Depends: (linux-image-[0-9][^\s]*-cloud-amd64)/.exec(stdout)?.[1],
    () => undefined,
  );
  if (fromApt) return fromApt;
  const cached = existsSync(cacheDir)
    ? (await readdir(cacheDir))
        .filter((d) => d.endsWith(`-${scriptsHash}`) && existsSync(path.join(cacheDir, d, 'manifest.json')))
        .sort()
    : [];
  const newest = cached.at(-1);
  if (newest) return newest.slice(0, -scriptsHash.length - 1);
  throw new Error(
    `apt-cache does not know ${KERNEL_META_PACKAGE}: run apt-get update (the guest kernel comes from Debian)`,
  );
}

async function hashScripts(): Promise<string> {
  const hash = createHash('sha256');
  for (const script of Object.values(SCRIPTS)) hash.update(await readFile(path.join(SCRIPTS_DIR, script)));
  hash.update(GUEST_MODULES.join(','));
  return hash.digest('hex').slice(0, 8);
}

if (require.main === module) {
  ensureGuestImage().then(
    (image) => process.stdout.write(`${JSON.stringify(image, null, 2)}\n`),
    (err: unknown) => {
      process.stderr.write(`guest image: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
