/**
 * The qemu driver's fallbacks on a real QEMU (no root: no network; never skipped: without QEMU it fails
 * and says what to install): a guest that ignores the ACPI power button — firmware only, no kernel, so no
 * OS hears it — gets Nova's clean shutdown for the timeout and then the hard one. A SOFT reboot becomes
 * the HARD one (QMP `system_reset` of the same QEMU), a stop ends in QEMU killed, and a start runs a new
 * QEMU. Short timeouts are given to the driver here (its defaults are Nova's 60 s and 10 s).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ComputeHost, listQemuProcesses, POWER_STATE, removeCloudFromMachine } from '../cloud/compute';
import { capabilitiesOf, defaultHostSpec } from '../cloud/hosts';
import { hostDirOf } from '../cloud/index';
import { INSTALL_COMMAND, onPath } from '../lib/guest-image';

const HOST = 'compute1';
const SHUTDOWN_TIMEOUT_MS = 2_000;

describe('qemu driver: a guest deaf to ACPI', { timeout: 180_000 }, () => {
  let dataDir: string;
  let host: ComputeHost;
  const uuid = randomUUID();

  const pidOf = async (instance: string) => (await listQemuProcesses()).find((p) => p.uuid === instance)?.pid;

  before(async () => {
    if (!(await onPath('qemu-system-x86_64')))
      throw new Error(`the qemu driver's tests need qemu-system-x86_64; install: ${INSTALL_COMMAND}`);
    dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-qemu-driver-'));
    host = await ComputeHost.open({
      host: HOST,
      hostDir: hostDirOf(dataDir, HOST),
      capabilities: capabilitiesOf(defaultHostSpec(HOST)),
      driver: 'qemu',
      qemu: { shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS, shutdownRetryIntervalMs: 500 },
    });
    await host.createInstanceDir(uuid, { rootGb: 1 });
  });

  after(async () => {
    // Whatever happened above: this run's QEMU processes go.
    if (dataDir) await removeCloudFromMachine(dataDir).catch(() => undefined);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  test('spawn: a daemonized QEMU running per QMP, its files in the instance directory', async () => {
    const domain = await host.spawn(uuid, { vcpus: 1, memoryMb: 128, portIds: [] });
    assert.equal(domain.powerState, POWER_STATE.RUNNING);
    assert.equal(domain.driver, 'qemu');
    assert.ok(await pidOf(uuid), 'a QEMU process names the instance');
    const dir = path.join(hostDirOf(dataDir, HOST), 'instances', uuid);
    for (const file of ['disk', 'libvirt.xml', 'domain.json', 'qemu.pid', 'qmp.sock', 'console.log'])
      assert.ok(existsSync(path.join(dir, file)), `${file} in the instance directory`);
    assert.equal(await host.getPowerState(uuid), POWER_STATE.RUNNING);
  });

  test('a SOFT reboot the guest does not answer becomes a HARD one after the timeout: the same QEMU reset', async () => {
    const pid = await pidOf(uuid);
    const started = Date.now();
    const rebooted = await host.reboot(uuid, 'SOFT');
    const took = Date.now() - started;
    assert.equal(rebooted.powerState, POWER_STATE.RUNNING);
    assert.equal(await pidOf(uuid), pid, 'system_reset of the running QEMU, not a new process');
    assert.ok(took >= SHUTDOWN_TIMEOUT_MS, `waited for the clean shutdown first (${took} ms)`);
  });

  test('a stop the guest does not answer ends in QEMU stopped hard; a start runs a new QEMU', async () => {
    const pid = await pidOf(uuid);
    const started = Date.now();
    const stopped = await host.powerOff(uuid);
    assert.ok(Date.now() - started >= SHUTDOWN_TIMEOUT_MS, 'the ACPI power button was tried first');
    assert.equal(stopped.powerState, POWER_STATE.SHUTDOWN);
    assert.equal(await pidOf(uuid), undefined, 'QEMU is gone');
    assert.equal((await host.getDomain(uuid))?.powerState, POWER_STATE.SHUTDOWN, 'still defined');
    const running = await host.powerOn(uuid);
    assert.equal(running.powerState, POWER_STATE.RUNNING);
    const again = await pidOf(uuid);
    assert.ok(again && again !== pid, 'a new QEMU process');
  });

  test('destroy leaves no QEMU and no instance directory', async () => {
    const result = await host.destroy(uuid);
    assert.equal(result.domainRemoved, true);
    assert.equal(await pidOf(uuid), undefined);
    assert.equal(existsSync(path.join(hostDirOf(dataDir, HOST), 'instances', uuid)), false);
    assert.deepEqual(await host.listDomains(), []);
    assert.deepEqual(await host.auditLeaks([]), []);
  });
});
