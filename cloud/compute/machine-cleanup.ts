/**
 * Removes from this machine everything one cloud's compute hosts made there — QEMU and dnsmasq processes,
 * taps, bridges, veth pairs and DHCP namespaces (also those its hosts shared) — whatever their state files say: the clean-up a test run
 * does in its `after` hook, even when it failed, and the way to decommission a data directory. Only what
 * carries the cloud's marks goes (a host directory under `<dataDir>/hosts` in a command line, a host's alias
 * on a device); another cloud on the same machine is left alone.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { listHostQemuProcesses } from './host-audit';
import { removeHostDevices, removeSharedNetworks, SHARED_NETWORK_DIR, stopProcess } from './linux-bridge';

export async function removeCloudFromMachine(dataDir: string): Promise<{ hostDirs: string[] }> {
  const root = path.join(path.resolve(dataDir), 'hosts');
  let names: string[];
  try {
    names = (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && e.name !== SHARED_NETWORK_DIR)
      .map((e) => e.name);
  } catch {
    return { hostDirs: [] };
  }
  const hostDirs = names.sort().map((name) => path.join(root, name));
  for (const hostDir of hostDirs) {
    // Guests first: a QEMU holding a tap open would keep using it while the devices go.
    for (const qemu of await listHostQemuProcesses(hostDir)) await stopProcess(qemu.pid);
    await removeHostDevices(hostDir);
  }
  // The networks the hosts shared: gone with their last member above, unless a member's directory was lost.
  await removeSharedNetworks(root);
  return { hostDirs };
}
