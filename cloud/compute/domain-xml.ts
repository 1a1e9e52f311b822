/** The domain definition file (`instances/<uuid>/libvirt.xml`), in libvirt's domain XML shape. */
import type { DomainDefinition } from './types';

function esc(value: string | number): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/**
 * The guest kernel's command line: serial console, and the instance id as Nova's metadata would give it.
 * Under software emulation (`tcg`) the guest also skips the speculation mitigations (a TCG CPU does not
 * speculate, so they guard nothing) and zeroing every page it allocates: about a tenth of the CPU a boot
 * takes before its init runs.
 */
export function kernelCommandLine(uuid: string, accel: 'tcg' | 'kvm' = 'tcg'): string {
  const emulated = accel === 'tcg' ? ' mitigations=off init_on_alloc=0' : '';
  return `console=ttyS0 panic=-1${emulated} bootflow.uuid=${uuid}`;
}

export function domainXml(spec: DomainDefinition, virtType: string): string {
  const disks = [
    `    <disk type="file" device="disk">\n      <driver name="qemu" type="${esc(spec.diskFormat)}" cache="none"/>\n` +
      `      <source file="${esc(spec.diskPath)}"/>\n      <target dev="vda" bus="virtio"/>\n    </disk>`,
    ...spec.volumes.map(
      (v) =>
        `    <disk type="file" device="disk">\n      <driver name="qemu" type="raw" cache="none"/>\n` +
        `      <source file="${esc(v.path)}"/>\n      <target dev="${esc(v.device)}" bus="virtio"/>\n` +
        (v.volumeId ? `      <serial>${esc(v.volumeId)}</serial>\n` : '') +
        `    </disk>`,
    ),
  ];
  const interfaces = spec.interfaces.map(
    (i) =>
      `    <interface type="bridge">\n      <mac address="${esc(i.macAddress)}"/>\n` +
      `      <source bridge="${esc(i.bridge)}"/>\n      <target dev="${esc(i.tap)}"/>\n` +
      `      <model type="virtio"/>\n    </interface>`,
  );
  return [
    `<domain type="${esc(virtType)}">`,
    `  <uuid>${esc(spec.uuid)}</uuid>`,
    `  <name>${esc(spec.name)}</name>`,
    ...(spec.memoryMb === null ? [] : [`  <memory unit="MiB">${esc(spec.memoryMb)}</memory>`]),
    ...(spec.vcpus === null ? [] : [`  <vcpu>${esc(spec.vcpus)}</vcpu>`]),
    `  <os>\n    <type arch="${esc(spec.cpuArch)}">hvm</type>`,
    ...(spec.kernelPath
      ? [
          `    <kernel>${esc(spec.kernelPath)}</kernel>`,
          ...(spec.ramdiskPath ? [`    <initrd>${esc(spec.ramdiskPath)}</initrd>`] : []),
          `    <cmdline>${esc(kernelCommandLine(spec.uuid))}</cmdline>`,
        ]
      : [`    <boot dev="hd"/>`]),
    `  </os>`,
    `  <sysinfo type="smbios">\n    <system>\n      <entry name="product">OpenStack Nova</entry>\n` +
      `      <entry name="serial">${esc(spec.uuid)}</entry>\n      <entry name="uuid">${esc(spec.uuid)}</entry>\n` +
      `    </system>\n  </sysinfo>`,
    `  <devices>`,
    ...disks,
    ...interfaces,
    `    <serial type="file">\n      <source path="${esc(spec.consoleLogPath)}"/>\n    </serial>`,
    `  </devices>`,
    `</domain>`,
    '',
  ].join('\n');
}
