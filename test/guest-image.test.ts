/**
 * What the real-guest paths (npm start's driver choice, the real-guest suite, the chaos preset, the guests
 * benchmark) check before they start: every tool the qemu driver and the linux-bridge agent run, each named
 * with the Debian package that brings it, and the one install command naming all of those packages; and
 * npm start's choice of virt driver with what it says each way. No root, no QEMU: the machine is given.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import {
  GUEST_PACKAGES,
  INSTALL_COMMAND,
  missingGuestTools,
  missingImageTools,
  onPath,
} from '../lib/guest-image';
import { chooseVirtDriver } from '../lib/guest-image/driver-choice';

const TUN = '/dev/net/tun (the tun driver)';
const withoutTun = (hints: string[]) => hints.filter((h) => h !== TUN);

test('real guests need ip and dnsmasq too: a machine without them is told so, with their packages', async () => {
  const absent = new Set(['ip', 'dnsmasq']);
  const missing = await missingGuestTools(async (tool) => !absent.has(tool));
  assert.deepEqual(withoutTun(missing), ['ip (iproute2)', 'dnsmasq (dnsmasq-base)']);
  assert.deepEqual(withoutTun(await missingGuestTools(async () => true)), []);
  assert.equal(missing.includes(TUN), !existsSync('/dev/net/tun'));
  // The image alone is built without them (scripts/bootstrap.ts --guest-image on a machine without dnsmasq).
  assert.deepEqual(withoutTun(await missingImageTools(async (tool) => !absent.has(tool))), []);
});

test('every package a hint names is in the one install command (apt and dpkg are the base system)', async () => {
  const hints = await missingGuestTools(async () => false);
  const packages = withoutTun(hints).map((h) => /\(([^)]+)\)$/.exec(h)?.[1] ?? h);
  assert.ok(packages.length >= 7, hints.join(', '));
  for (const pkg of packages) {
    if (pkg === 'apt' || pkg === 'dpkg') continue;
    assert.ok((GUEST_PACKAGES as readonly string[]).includes(pkg), `${pkg} in GUEST_PACKAGES`);
  }
  assert.equal(INSTALL_COMMAND, `apt-get install -y --no-install-recommends ${GUEST_PACKAGES.join(' ')}`);
});

test('a tool in /usr/sbin is found with a PATH that lacks it (dnsmasq for a non-root user)', async () => {
  const saved = process.env.PATH;
  process.env.PATH = '/usr/bin:/bin';
  try {
    assert.equal(await onPath('sh'), true);
    assert.equal(await onPath('bootflow-no-such-tool'), false);
    if (existsSync('/usr/sbin/dnsmasq')) assert.equal(await onPath('dnsmasq'), true);
  } finally {
    process.env.PATH = saved;
  }
});

/** npm start's choice on a machine described by `machine`: what it said and what it chose. */
async function choice(machine: {
  env?: NodeJS.ProcessEnv;
  isRoot: boolean;
  missing: string[][];
  aptGet?: boolean;
  aptFails?: boolean;
  imageFails?: boolean;
}): Promise<{ lines: string[]; chosen: string | undefined; installed: string[][] }> {
  const lines: string[] = [];
  const installed: string[][] = [];
  let asked = 0;
  const guest = await chooseVirtDriver({
    env: machine.env ?? {},
    isRoot: machine.isRoot,
    missingTools: async () => machine.missing[Math.min(asked++, machine.missing.length - 1)] ?? [],
    hasAptGet: async () => machine.aptGet ?? true,
    async aptInstall(packages) {
      installed.push([...packages]);
      if (machine.aptFails) throw new Error('E: Unable to locate package qemu-system-x86\nmore');
    },
    async buildImage() {
      if (machine.imageFails) throw new Error('apt-cache does not know linux-image-cloud-amd64');
      return {
        build: 'linux-image-6.1.0-99-cloud-amd64-abcd1234',
        kernelPackage: 'linux-image-6.1.0-99-cloud-amd64',
        kernelPath: '/k',
        ramdiskPath: '/r',
        diskPath: '/d',
        dir: '/',
      };
    },
    say: (line) => lines.push(line),
  });
  return { lines, chosen: guest?.build, installed };
}

test('npm start says which virt driver it uses: qemu as root with the tools there, the guest image built', async () => {
  const { lines, chosen, installed } = await choice({ isRoot: true, missing: [[]] });
  assert.equal(chosen, 'linux-image-6.1.0-99-cloud-amd64-abcd1234');
  assert.deepEqual(installed, []);
  assert.equal(
    lines.at(-1),
    '• virt driver: qemu (software emulation), network agent: linux-bridge — guest linux-image-6.1.0-99-cloud-amd64-abcd1234',
  );
});

test('as root with apt-get it installs the missing packages itself, then uses qemu', async () => {
  const { lines, chosen, installed } = await choice({
    isRoot: true,
    missing: [['dnsmasq (dnsmasq-base)'], []],
  });
  assert.ok(chosen);
  assert.deepEqual(installed, [[...GUEST_PACKAGES]]);
  assert.equal(lines[0], `• installing the Debian packages for real guests: ${GUEST_PACKAGES.join(' ')}`);
  assert.match(lines.at(-1) ?? '', /^• virt driver: qemu/);
});

test('otherwise it falls back to the fake driver, saying why and the one command to run', async () => {
  // Not root: the command with sudo, nothing installed.
  const user = await choice({ isRoot: false, missing: [['qemu-system-x86_64 (qemu-system-x86)']] });
  assert.equal(user.chosen, undefined);
  assert.deepEqual(user.installed, []);
  assert.deepEqual(user.lines, [
    '• virt driver: fake — real guests need qemu-system-x86_64 (qemu-system-x86); install them with:',
    `    sudo ${INSTALL_COMMAND}`,
  ]);
  // Root, but apt-get fails: it says so, then the same fallback.
  const failed = await choice({ isRoot: true, missing: [['cpio (cpio)']], aptFails: true });
  assert.equal(failed.chosen, undefined);
  assert.deepEqual(failed.lines.slice(1), [
    '  (apt-get failed: E: Unable to locate package qemu-system-x86)',
    '• virt driver: fake — real guests need cpio (cpio); install them with:',
    `    ${INSTALL_COMMAND}`,
  ]);
  // Root without apt-get: nothing tried.
  const noApt = await choice({ isRoot: true, missing: [['cpio (cpio)']], aptGet: false });
  assert.deepEqual(noApt.installed, []);
  assert.equal(noApt.chosen, undefined);
  // Everything installed but not root.
  const notRoot = await choice({ isRoot: false, missing: [[]] });
  assert.deepEqual(notRoot.lines, [
    '• virt driver: fake — real guests need root (taps, bridges, network namespaces)',
  ]);
  // The image does not build (offline, no apt lists).
  const noImage = await choice({ isRoot: true, missing: [[]], imageFails: true });
  assert.equal(noImage.chosen, undefined);
  assert.equal(
    noImage.lines.at(-1),
    '• virt driver: fake — the guest image could not be built: apt-cache does not know linux-image-cloud-amd64',
  );
  // Asked for the fake driver.
  const asked = await choice({ env: { BOOTFLOW_VIRT_DRIVER: 'fake' }, isRoot: true, missing: [[]] });
  assert.deepEqual(asked.lines, ['• virt driver: fake (BOOTFLOW_VIRT_DRIVER=fake): no guest runs']);
});
