/**
 * The qemu virt driver: real guests under QEMU's software emulation (TCG; this machine's /dev/kvm runs no
 * ordinary guest), one daemonized `qemu-system-x86_64` per instance, managed as Nova's libvirt driver
 * manages a domain but without libvirtd. Everything lives in the instance directory, so any worker process
 * on the host (or a restarted one) finds the guest again:
 *
 *   instances/<uuid>/domain.json   the defined domain: what spawn was given (its presence = "defined")
 *   instances/<uuid>/libvirt.xml   the domain description (written by the compute host)
 *   instances/<uuid>/disk          qcow2 overlay on the cached base image
 *   instances/<uuid>/console.log   the serial console (ttyS0)
 *   instances/<uuid>/qemu.pid      QEMU's pid file (QEMU removes it when it exits)
 *   instances/<uuid>/qmp.sock      the QMP monitor
 *   instances/<uuid>/managed.save  a suspended guest's saved state (libvirt's managed save image)
 *
 * The process is named `guest=instance-<uuid>` and carries the uuid (`-uuid`, SMBIOS, `-append`), so a
 * stray one is found by its command line.
 */
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import type { Clock } from '../clock';
import { CloudError } from '../errors';
import { kernelCommandLine } from './domain-xml';
import { sleep, withFileLock } from './file-lock';
import { processAlive } from './image-cache';
import { runCommand } from './host-commands';
import { writeQcow2Overlay, type BackingFile } from './qcow2-overlay';
import { queryStatus, qmpCommand } from './qmp';
import { writeFileAtomic } from './state-file';
import { timedStep } from './step-timings';
import { POWER_STATE, type DomainInfo, type DomainSpec, type PowerState } from './types';
import type { RebootType, VirtDriver } from './virt-driver';

export const QEMU_BINARY = 'qemu-system-x86_64';
/** Nova's libvirt driver reads at most this much of the console log (MAX_CONSOLE_BYTES). */
export const MAX_CONSOLE_BYTES = 100 * 1024;

const FILES = {
  definition: 'domain.json',
  pid: 'qemu.pid',
  qmp: 'qmp.sock',
  console: 'console.log',
  save: 'managed.save',
} as const;

const definitionSchema = z.object({
  uuid: z.string(),
  name: z.string(),
  vcpus: z.number().int().min(1),
  memoryMb: z.number().int().min(1),
  diskPath: z.string(),
  diskFormat: z.enum(['raw', 'qcow2']),
  kernelPath: z.string().nullable(),
  ramdiskPath: z.string().nullable(),
  interfaces: z.array(z.object({ portId: z.string(), macAddress: z.string(), tap: z.string() })),
  volumes: z.array(z.object({ device: z.string(), path: z.string(), volumeId: z.string().nullable() })),
  createdAt: z.number(),
});
type Definition = z.infer<typeof definitionSchema>;

export interface QemuDriverOptions {
  binary?: string;
  /** `tcg` (software emulation, the default here) or `kvm`. */
  accel?: 'tcg' | 'kvm';
  /** How long a clean shutdown (ACPI power button) may take before the guest is stopped hard (Nova: 60 s). */
  shutdownTimeoutMs?: number;
  /** The ACPI power button is pressed again this often while waiting (Nova: SHUTDOWN_RETRY_INTERVAL, 10 s). */
  shutdownRetryIntervalMs?: number;
  /** How long a started QEMU may take to answer `query-status` with `running`. */
  startTimeoutMs?: number;
}

/** A QEMU process of some guest on this machine, found by its command line (for init_host and the audit). */
export interface QemuProcess {
  pid: number;
  uuid: string;
  /** The instance directory its pid file is in (which host directory started it). */
  instanceDir: string | null;
}

export class QemuDriver implements VirtDriver {
  readonly type = 'qemu';
  readonly diskFormat = 'qcow2';
  private readonly binary: string;
  private readonly accel: 'tcg' | 'kvm';
  private readonly shutdownTimeoutMs: number;
  private readonly shutdownRetryIntervalMs: number;
  private readonly startTimeoutMs: number;

  constructor(
    private readonly hostDir: string,
    private readonly clock: Clock,
    options: QemuDriverOptions = {},
  ) {
    this.binary = options.binary ?? QEMU_BINARY;
    this.accel = options.accel ?? 'tcg';
    this.shutdownTimeoutMs = options.shutdownTimeoutMs ?? 60_000;
    this.shutdownRetryIntervalMs = options.shutdownRetryIntervalMs ?? 10_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 60_000;
  }

  async spawn(spec: DomainSpec, signal?: AbortSignal): Promise<DomainInfo> {
    return this.locked(spec.uuid, () => this.spawnLocked(spec, signal), signal);
  }

  private async spawnLocked(spec: DomainSpec, signal?: AbortSignal): Promise<DomainInfo> {
    const existing = await this.readDefinition(spec.uuid);
    const definition: Definition = {
      uuid: spec.uuid,
      name: spec.name,
      vcpus: spec.vcpus,
      memoryMb: spec.memoryMb,
      diskPath: spec.diskPath,
      diskFormat: spec.diskFormat,
      kernelPath: spec.kernelPath,
      ramdiskPath: spec.ramdiskPath,
      interfaces: spec.interfaces.map((i) => ({ portId: i.portId, macAddress: i.macAddress, tap: i.tap })),
      volumes: spec.volumes,
      createdAt: existing?.createdAt ?? this.clock.now(),
    };
    if (await this.runningPid(spec.uuid)) return this.requireInfo(spec.uuid);
    await writeFileAtomic(this.file(spec.uuid, 'definition'), `${JSON.stringify(definition, null, 2)}\n`);
    await this.launch(definition, signal);
    // launch saw QMP answer `running`: no second query for the state it just read.
    return this.infoOf(definition, POWER_STATE.RUNNING);
  }

  /** Nova's power_off with a clean shutdown: ACPI power button, then a hard stop after the timeout. */
  async powerOff(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      await this.requireDefinition(uuid);
      if (!(await this.cleanShutdown(uuid))) await this.stopProcess(uuid);
      return this.requireInfo(uuid);
    });
  }

  async powerOn(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      const definition = await this.requireDefinition(uuid);
      if (!(await this.runningPid(uuid))) await this.launch(definition);
      return this.requireInfo(uuid);
    });
  }

  /**
   * SOFT: ACPI shutdown, then started again on the same disk; a guest that does not power off within the
   * timeout gets the HARD one. HARD: `system_reset` of a running (or paused: then continued) guest, a start
   * of a stopped or suspended one (its saved state discarded, as libvirt's undefine in Nova's hard reboot).
   */
  async reboot(uuid: string, type: RebootType): Promise<DomainInfo> {
    return this.locked(uuid, () => this.rebootLocked(uuid, type));
  }

  private async rebootLocked(uuid: string, type: RebootType): Promise<DomainInfo> {
    const definition = await this.requireDefinition(uuid);
    const pid = await this.runningPid(uuid);
    if (!pid) {
      await this.launch(definition);
      return this.requireInfo(uuid);
    }
    if (type === 'SOFT' && (await this.cleanShutdown(uuid))) {
      await this.launch(definition);
      return this.requireInfo(uuid);
    }
    if (await this.runningPid(uuid)) {
      await qmpCommand(this.file(uuid, 'qmp'), 'system_reset');
      // A paused guest stays paused through the reset (QEMU handles the reset request in its main loop):
      // continued until QMP says running, as Nova's hard reboot leaves it.
      await this.continueUntilRunning(uuid);
    } else await this.launch(definition);
    return this.requireInfo(uuid);
  }

  /** Nova's pause (virDomainSuspend): QMP `stop`; the process keeps the guest's memory (QMP: paused). */
  async pause(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      await this.requireRunning(uuid);
      await qmpCommand(this.file(uuid, 'qmp'), 'stop');
      return this.requireInfo(uuid);
    });
  }

  /** Nova's unpause (virDomainResume): QMP `cont`. */
  async unpause(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      await this.requireRunning(uuid);
      await qmpCommand(this.file(uuid, 'qmp'), 'cont');
      return this.requireInfo(uuid);
    });
  }

  /**
   * Nova's suspend, which the libvirt driver does as a managed save: the guest stopped, its state (memory
   * and devices) migrated into `managed.save` in the instance directory (through a temporary file renamed
   * when complete, so a present save is a whole one), then QEMU stopped. The domain stays defined; its
   * power state is SHUTDOWN (libvirt's SHUTOFF). A retry after the save finds it saved and does nothing.
   */
  async suspend(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      await this.requireDefinition(uuid);
      const saved = this.file(uuid, 'save');
      if (!(await this.runningPid(uuid))) {
        if (await fileExists(saved)) return this.requireInfo(uuid);
        throw notRunning(uuid);
      }
      await this.saveState(uuid, saved);
      await this.stopProcess(uuid);
      return this.requireInfo(uuid);
    });
  }

  /**
   * Nova's resume (libvirt's start of a domain with a managed save image): QEMU started with `-incoming`
   * from the saved state, which leaves the guest paused where it was saved; `cont` runs it, and the save is
   * removed. A guest already running (a retry after the restore) is only checked.
   */
  async resume(uuid: string): Promise<DomainInfo> {
    return this.locked(uuid, async () => {
      const definition = await this.requireDefinition(uuid);
      const saved = this.file(uuid, 'save');
      if (await this.runningPid(uuid)) {
        const { status } = await queryStatus(this.file(uuid, 'qmp'));
        if (status === 'paused') await qmpCommand(this.file(uuid, 'qmp'), 'cont');
      } else {
        if (!(await fileExists(saved)))
          throw new CloudError('InstanceInvalidState', `Instance ${uuid} has no saved state to resume from`, {
            instance: uuid,
          });
        await this.launch(definition, undefined, saved);
      }
      await rm(saved, { force: true });
      return this.requireInfo(uuid);
    });
  }

  async destroy(uuid: string): Promise<boolean> {
    const defined = (await this.readDefinition(uuid)) !== undefined;
    const stopped = await this.stopProcess(uuid);
    for (const name of ['definition', 'pid', 'qmp', 'save'] as const)
      await rm(this.file(uuid, name), { force: true });
    await rm(`${this.file(uuid, 'save')}.part`, { force: true });
    return defined || stopped;
  }

  async getInfo(uuid: string): Promise<DomainInfo | undefined> {
    const definition = await this.readDefinition(uuid);
    if (!definition) return undefined;
    return this.infoOf(definition, await this.powerStateOf(uuid));
  }

  private infoOf(definition: Definition, powerState: PowerState): DomainInfo {
    return {
      uuid: definition.uuid,
      name: definition.name,
      powerState,
      vcpus: definition.vcpus,
      memoryMb: definition.memoryMb,
      driver: this.type,
      createdAt: definition.createdAt,
      updatedAt: this.clock.now(),
    };
  }

  async listDomains(): Promise<DomainInfo[]> {
    const domains: DomainInfo[] = [];
    for (const uuid of await this.definedUuids()) {
      const info = await this.getInfo(uuid);
      if (info) domains.push(info);
    }
    return domains.sort((a, b) => a.createdAt - b.createdAt || a.uuid.localeCompare(b.uuid));
  }

  async getConsoleOutput(uuid: string): Promise<string> {
    await this.requireDefinition(uuid);
    let handle;
    try {
      handle = await open(this.file(uuid, 'console'), 'r');
    } catch {
      return '';
    }
    try {
      const { size } = await handle.stat();
      const length = Math.min(size, MAX_CONSOLE_BYTES);
      const buf = Buffer.alloc(length);
      await handle.read(buf, 0, length, size - length);
      return buf.toString('utf8');
    } finally {
      await handle.close();
    }
  }

  /**
   * Nova's init_host for this driver: guests whose domain is defined are found again from their pid files
   * and QMP sockets (nothing to do: every call reads them). QEMU processes started from this host
   * directory whose instance directory is gone (the host no longer knows the instance) are strays: they
   * are killed. Returns the uuids of the strays it killed.
   */
  async initHost(): Promise<string[]> {
    const instancesDir = path.join(this.hostDir, 'instances');
    const defined = new Set(await this.definedUuids());
    const reaped: string[] = [];
    for (const proc of await listQemuProcesses()) {
      if (proc.instanceDir === null || path.dirname(proc.instanceDir) !== instancesDir) continue;
      if (defined.has(proc.uuid)) continue;
      await killAndWait(proc.pid);
      reaped.push(proc.uuid);
    }
    return reaped;
  }

  // ---- internals ----------------------------------------------------------------------------------------

  /**
   * One operation at a time per guest, across the host's processes (a retried spawn must not start a
   * second QEMU beside the first): a lock in `state/`, outside the instance directory destroy removes.
   */
  private async locked<T>(uuid: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const result = await withFileLock(path.join(this.hostDir, 'state', `guest-${uuid}`), fn, {
      staleMs: 10_000,
      waitMs: this.shutdownTimeoutMs + this.startTimeoutMs + 30_000,
      signal,
    });
    return result as T;
  }

  private file(uuid: string, name: keyof typeof FILES): string {
    return path.join(this.hostDir, 'instances', uuid, FILES[name]);
  }

  private async definedUuids(): Promise<string[]> {
    const entries = await readdir(path.join(this.hostDir, 'instances'), { withFileTypes: true }).catch(
      () => [],
    );
    const uuids: string[] = [];
    for (const entry of entries)
      if (entry.isDirectory() && (await this.readDefinition(entry.name))) uuids.push(entry.name);
    return uuids;
  }

  private async readDefinition(uuid: string): Promise<Definition | undefined> {
    let text: string;
    try {
      text = await readFile(this.file(uuid, 'definition'), 'utf8');
    } catch {
      return undefined;
    }
    const parsed = definitionSchema.safeParse(JSON.parse(text));
    if (!parsed.success)
      throw new CloudError('BadRequest', `The domain definition of instance ${uuid} is damaged`);
    return parsed.data;
  }

  private async requireDefinition(uuid: string): Promise<Definition> {
    const definition = await this.readDefinition(uuid);
    if (!definition)
      throw new CloudError('NotFound', `No domain for instance ${uuid} on this host`, { instance: uuid });
    return definition;
  }

  private async requireInfo(uuid: string): Promise<DomainInfo> {
    const info = await this.getInfo(uuid);
    if (!info)
      throw new CloudError('NotFound', `No domain for instance ${uuid} on this host`, { instance: uuid });
    return info;
  }

  /** The pid of this guest's QEMU if it runs: from the pid file, checked against the process's command line. */
  private async runningPid(uuid: string): Promise<number | undefined> {
    const pid = Number((await readFile(this.file(uuid, 'pid'), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0 || !processAlive(pid)) return undefined;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    return cmdline.includes(`guest=instance-${uuid}`) ? pid : undefined;
  }

  /** power_state from QMP: running → RUNNING, paused states → PAUSED, panicked → CRASHED; no process → SHUTDOWN. */
  private async powerStateOf(uuid: string): Promise<PowerState> {
    if (!(await this.runningPid(uuid))) return POWER_STATE.SHUTDOWN;
    try {
      const { status } = await queryStatus(this.file(uuid, 'qmp'));
      if (status === 'running') return POWER_STATE.RUNNING;
      if (status === 'shutdown') return POWER_STATE.SHUTDOWN;
      if (status === 'guest-panicked' || status === 'internal-error') return POWER_STATE.CRASHED;
      if (status === 'suspended') return POWER_STATE.SUSPENDED;
      return POWER_STATE.PAUSED;
    } catch {
      // The process is there but its monitor does not answer (starting, or wedged): no state known.
      return (await this.runningPid(uuid)) ? POWER_STATE.NOSTATE : POWER_STATE.SHUTDOWN;
    }
  }

  private qemuArgs(d: Definition): string[] {
    const dir = path.dirname(this.file(d.uuid, 'definition'));
    const args = [
      ['-name', `guest=instance-${d.uuid},debug-threads=on`],
      ['-uuid', d.uuid],
      ['-smbios', `type=1,manufacturer=bootflow,product=OpenStack Nova,serial=${d.uuid},uuid=${d.uuid}`],
      ['-accel', this.accel],
      ['-machine', 'pc'],
      ['-cpu', 'max'],
      ['-m', String(d.memoryMb)],
      ['-smp', String(d.vcpus)],
      // No default devices, and no configuration file of the machine's QEMU changes what runs.
      ['-nodefaults'],
      ['-no-user-config'],
      ['-display', 'none'],
      ['-daemonize'],
      ['-pidfile', path.join(dir, FILES.pid)],
      // Relative to QEMU's working directory (the instance directory): a unix socket path must stay short.
      ['-qmp', `unix:${FILES.qmp},server=on,wait=off`],
      // Appended across starts, so the log shows every boot (as `openstack console log show` does).
      ['-chardev', `file,id=console0,path=${qemuOpt(path.join(dir, FILES.console))},append=on`],
      ['-serial', 'chardev:console0'],
      ['-drive', `file=${qemuOpt(d.diskPath)},format=${d.diskFormat},if=virtio,cache=writeback`],
      ...d.volumes.map((v) => [
        '-drive',
        `file=${qemuOpt(v.path)},format=raw,if=virtio,cache=writeback${v.volumeId ? `,serial=${v.volumeId.slice(0, 20)}` : ''}`,
      ]),
      ...d.interfaces.flatMap((vif, i) => [
        ['-netdev', `tap,id=net${i},ifname=${vif.tap},script=no,downscript=no`],
        // No option ROM (iPXE): the guest boots from its kernel, never from the network.
        ['-device', `virtio-net-pci,netdev=net${i},mac=${vif.macAddress},romfile=`],
      ]),
    ];
    if (d.kernelPath) {
      args.push(['-kernel', d.kernelPath]);
      if (d.ramdiskPath) args.push(['-initrd', d.ramdiskPath]);
      args.push(['-append', kernelCommandLine(d.uuid, this.accel)]);
    }
    return args.flat();
  }

  /**
   * Starts QEMU daemonized and waits until QMP reports the guest running. With `incoming` (a saved state):
   * QEMU loads it (`-incoming`), then the guest, paused as it was saved, is continued. A start without it
   * discards a saved state, as libvirt's undefine of the domain does on Nova's hard reboot and power on.
   */
  private async launch(definition: Definition, signal?: AbortSignal, incoming?: string): Promise<void> {
    const dir = path.dirname(this.file(definition.uuid, 'definition'));
    await rm(this.file(definition.uuid, 'qmp'), { force: true });
    if (!incoming) await rm(this.file(definition.uuid, 'save'), { force: true });
    const args = [
      ...this.qemuArgs(definition),
      ...(incoming ? ['-incoming', `exec:cat ${shellQuote(incoming)}`] : []),
    ];
    try {
      await timedStep('spawn: QEMU start (daemonized)', () =>
        runCommand(this.binary, args, { cwd: dir, timeoutMs: this.startTimeoutMs }),
      );
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
      throw new CloudError(
        'RescheduledException',
        `QEMU could not start instance ${definition.uuid}: ${stderr || (err as Error).message}`,
        { instance: definition.uuid },
      );
    }
    if (incoming) await this.awaitIncoming(definition.uuid, signal);
    await timedStep('spawn: QMP says running', () => this.awaitRunning(definition.uuid, signal));
  }

  /** Until the saved state is loaded (QMP leaves `inmigrate`), then `cont` if the guest waits paused. */
  private async awaitIncoming(uuid: string, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      const status = await queryStatus(this.file(uuid, 'qmp')).catch(() => undefined);
      if (status?.running) return;
      if (status && status.status !== 'inmigrate') {
        await qmpCommand(this.file(uuid, 'qmp'), 'cont');
        return;
      }
      if (Date.now() > deadline || !(await this.runningPid(uuid))) {
        await this.stopProcess(uuid);
        throw new CloudError(
          'ServiceUnavailable',
          `Instance ${uuid} could not be restored from its saved state (QMP status ${status?.status ?? 'unknown'})`,
          { instance: uuid },
        );
      }
      await sleep(delay, signal);
    }
  }

  /**
   * The guest stopped and its state migrated to `target` through `<target>.part` (libvirt's managed save
   * runs the migration at full speed, not QEMU's default 32 MiB/s); a failed save continues the guest.
   */
  private async saveState(uuid: string, target: string): Promise<void> {
    const qmp = this.file(uuid, 'qmp');
    const part = `${target}.part`;
    await rm(part, { force: true });
    await qmpCommand(qmp, 'stop');
    try {
      await qmpCommand(qmp, 'migrate-set-parameters', { 'max-bandwidth': Number.MAX_SAFE_INTEGER });
      await qmpCommand(qmp, 'migrate', {
        uri: `exec:cat > ${shellQuote(part)} && mv ${shellQuote(part)} ${shellQuote(target)}`,
      });
      const deadline = Date.now() + this.startTimeoutMs + this.shutdownTimeoutMs;
      for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
        const state = await qmpCommand<{ status?: string; 'error-desc'?: string }>(qmp, 'query-migrate');
        if (state.status === 'completed' && (await fileExists(target))) return;
        if (state.status === 'failed' || state.status === 'cancelled')
          throw new CloudError(
            'ServiceUnavailable',
            `Saving instance ${uuid} failed: ${state['error-desc'] ?? state.status}`,
            {
              instance: uuid,
            },
          );
        if (Date.now() > deadline)
          throw new CloudError('ServiceUnavailable', `Saving instance ${uuid} did not complete in time`, {
            instance: uuid,
          });
        await sleep(delay);
      }
    } catch (err) {
      await qmpCommand(qmp, 'migrate_cancel').catch(() => undefined);
      await qmpCommand(qmp, 'cont').catch(() => undefined);
      await rm(part, { force: true });
      throw err;
    }
  }

  /** `cont` until QMP reports the guest running (within the start timeout). */
  private async continueUntilRunning(uuid: string): Promise<void> {
    const qmp = this.file(uuid, 'qmp');
    const deadline = Date.now() + this.startTimeoutMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      const status = await queryStatus(qmp).catch(() => undefined);
      if (status?.running) return;
      if (status) await qmpCommand(qmp, 'cont').catch(() => undefined);
      if (Date.now() > deadline)
        throw new CloudError('ServiceUnavailable', `Instance ${uuid} did not run again after its reset`, {
          instance: uuid,
        });
      await sleep(delay);
    }
  }

  /** The guest's QEMU runs, or the libvirt error of an operation on a domain that does not. */
  private async requireRunning(uuid: string): Promise<number> {
    await this.requireDefinition(uuid);
    const pid = await this.runningPid(uuid);
    if (!pid) throw notRunning(uuid);
    return pid;
  }

  /** Until QMP reports the guest running; a QEMU that exits or never gets there is stopped. */
  private async awaitRunning(uuid: string, signal?: AbortSignal): Promise<void> {
    const deadline = Date.now() + this.startTimeoutMs;
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      const status = await queryStatus(this.file(uuid, 'qmp')).catch(() => undefined);
      if (status?.running) return;
      if (Date.now() > deadline || !(await this.runningPid(uuid))) {
        await this.stopProcess(uuid);
        throw new CloudError(
          'RescheduledException',
          `Instance ${uuid} did not reach running (QMP status ${status?.status ?? 'unknown'})`,
          { instance: uuid },
        );
      }
      await sleep(delay, signal);
    }
  }

  /**
   * ACPI power button, pressed again every retry interval (a guest still booting has no acpid yet to hear
   * it), as Nova's _clean_shutdown does; true when the guest powered off (QEMU exited) within the timeout.
   */
  private async cleanShutdown(uuid: string): Promise<boolean> {
    const pid = await this.runningPid(uuid);
    if (!pid) return true;
    const deadline = Date.now() + this.shutdownTimeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      try {
        await qmpCommand(this.file(uuid, 'qmp'), 'system_powerdown');
      } catch {
        return !processAlive(pid);
      }
      if (await waitForExit(pid, Math.min(left, this.shutdownRetryIntervalMs))) return true;
    }
  }

  /** QMP `quit`, then SIGKILL by pid file if QEMU is still there. True when a process was stopped. */
  private async stopProcess(uuid: string): Promise<boolean> {
    const pid = await this.runningPid(uuid);
    const strays = (await listQemuProcesses()).filter((p) => p.uuid === uuid && p.pid !== pid);
    if (!pid && strays.length === 0) return false;
    if (pid) {
      await qmpCommand(this.file(uuid, 'qmp'), 'quit', undefined, 2_000).catch(() => undefined);
      if (!(await waitForExit(pid, 5_000))) await killAndWait(pid);
    }
    // A QEMU of this guest without (or with another) pid file, e.g. one whose pid file was lost.
    for (const stray of strays) await killAndWait(stray.pid);
    return true;
  }
}

/** libvirt's answer to an operation on a domain that is not running. */
function notRunning(uuid: string): CloudError {
  return new CloudError(
    'InstanceInvalidState',
    `Requested operation is not valid: domain instance-${uuid} is not running`,
    { instance: uuid },
  );
}

async function fileExists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/** A word for /bin/sh (QEMU runs an `exec:` migration URI with `sh -c`). */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

/** A value inside a QEMU `key=value,...` option: commas are doubled. */
function qemuOpt(value: string): string {
  return value.replace(/,/g, ',,');
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 20; processAlive(pid); delay = Math.min(delay * 2, 250)) {
    if (Date.now() > deadline) return false;
    await sleep(delay);
  }
  return true;
}

async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  await waitForExit(pid, 10_000);
}

/** Every QEMU guest process on this machine started by a qemu driver (named `guest=instance-<uuid>`). */
export async function listQemuProcesses(): Promise<QemuProcess[]> {
  const found: QemuProcess[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (!cmdline.includes(QEMU_BINARY)) continue;
    const args = cmdline.split('\0');
    const name = args[args.indexOf('-name') + 1] ?? '';
    const uuid = /^guest=instance-([0-9a-f-]{36})/.exec(name)?.[1];
    if (!uuid) continue;
    const pidFile = args[args.indexOf('-pidfile') + 1];
    found.push({
      pid: Number(entry),
      uuid,
      instanceDir: args.includes('-pidfile') && pidFile ? path.dirname(pidFile) : null,
    });
  }
  return found;
}

/**
 * The instance disk as Nova's libvirt driver makes it (`qemu-img create -f qcow2 -b <base> -F <fmt> <disk>
 * <size>`), written directly (./qcow2-overlay.ts: the same bytes, no process) into a temp file renamed into
 * place.
 */
export async function createQcow2Overlay(
  diskPath: string,
  sizeBytes: number,
  base?: BackingFile,
): Promise<void> {
  const temp = `${diskPath}.${process.pid}.part`;
  try {
    await writeQcow2Overlay(temp, sizeBytes, base);
    await rename(temp, diskPath);
  } catch (err) {
    await rm(temp, { force: true });
    throw new CloudError(
      'RescheduledException',
      `could not create the instance disk: ${(err as Error).message}`,
    );
  }
}
