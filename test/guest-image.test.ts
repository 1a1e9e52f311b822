/**
 * What the real-guest paths (npm start's driver choice, the real-guest suite, the chaos preset, the guests
 * benchmark) check before they start: every tool the qemu driver and the linux-bridge agent run, each named
 * with the Debian package that brings it, and the one install command naming all of those packages. No root,
 * no QEMU: the lookup is given.
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
