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

export function domainXml(spec: DomainDefinition, virtType: string): string {
  const disks = [
    `    <disk type="file" device="disk">\n      <driver name="qemu" type="raw" cache="none"/>\n` +
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
    `  <os>\n    <type arch="${esc(spec.cpuArch)}">hvm</type>\n    <boot dev="hd"/>\n  </os>`,
    `  <devices>`,
    ...disks,
    ...interfaces,
    `  </devices>`,
    `</domain>`,
    '',
  ].join('\n');
}
