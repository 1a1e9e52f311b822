/** How the client shows servers, hypervisors and audit findings, in the OpenStack client's layout. */
import type { HypervisorView, LeakFinding, ServerView } from '../../workflows/operator-types';
import { renderFields, renderTable, type Column } from './output';

/** `private=10.0.0.5; public=172.24.4.9`, as `openstack server list` shows the Networks column. */
export function networksText(server: Pick<ServerView, 'addresses'>): string {
  return Object.entries(server.addresses)
    .map(([network, list]) => `${network}=${list.map((a) => a.addr).join(', ')}`)
    .join('; ');
}

function imageText(server: ServerView): string {
  return server.image ? server.image.name : 'N/A (booted from volume)';
}

const SERVER_COLUMNS: Column<ServerView>[] = [
  { header: 'ID', value: (s) => s.id },
  { header: 'Name', value: (s) => s.name },
  { header: 'Status', value: (s) => s.status },
  { header: 'Networks', value: (s) => networksText(s) },
  { header: 'Image', value: (s) => imageText(s) },
  { header: 'Flavor', value: (s) => s.flavor },
  { header: 'Host', value: (s) => s.host ?? '' },
];

export function serverListTable(servers: ServerView[], allProjects: boolean): string {
  const columns = allProjects
    ? [...SERVER_COLUMNS, { header: 'Project ID', value: (s: ServerView) => s.projectId }]
    : SERVER_COLUMNS;
  return renderTable(columns, servers);
}

export function serverFields(server: ServerView, extra: Array<[string, unknown]> = []): string {
  const volumes = server.volumes
    .map((v) => `${v.id}${v.device ? ` on ${v.device}` : ''} (${v.sizeGb} GB)`)
    .join('\n');
  const fields: Array<[string, unknown]> = [
    ['id', server.id],
    ['name', server.name],
    ['status', server.status],
    ['OS-EXT-STS:vm_state', server.vmState],
    ['OS-EXT-STS:task_state', server.taskState],
    ['OS-EXT-STS:power_state', server.powerState],
    ['OS-EXT-SRV-ATTR:host', server.host],
    ['addresses', networksText(server)],
    ['volumes_attached', volumes],
    ['flavor', server.flavor],
    ['image', imageText(server)],
    ['project_id', server.projectId],
    ['user_id', server.userId],
    ['created', server.created],
    ['OS-SRV-USG:launched_at', server.launchedAt],
    ['request_id', server.requestId],
  ];
  if (server.fault) {
    fields.push(['fault', `${server.fault.message} (code ${server.fault.code}, ${server.fault.created})`]);
  }
  return renderFields([...fields, ...extra]);
}

const used = (r: { used: number; total: number }) => `${r.used} / ${r.total}`;

export function hypervisorTable(hypervisors: HypervisorView[]): string {
  return renderTable<HypervisorView>(
    [
      { header: 'Hypervisor Hostname', value: (h) => h.host },
      { header: 'Type', value: (h) => h.hypervisorType },
      { header: 'State', value: (h) => h.state },
      { header: 'Status', value: (h) => h.status },
      { header: 'vCPUs used / total', value: (h) => used(h.vcpus) },
      { header: 'vCPUs free', value: (h) => h.vcpus.free },
      { header: 'RAM MB used / total', value: (h) => used(h.memoryMb) },
      { header: 'RAM MB free', value: (h) => h.memoryMb.free },
      { header: 'Disk GB used / total', value: (h) => used(h.diskGb) },
      { header: 'Disk GB free', value: (h) => h.diskGb.free },
      { header: 'VMs', value: (h) => h.runningVms },
    ],
    hypervisors,
  );
}

export function auditTable(findings: LeakFinding[]): string {
  return renderTable<LeakFinding>(
    [
      { header: 'Kind', value: (f) => f.kind },
      { header: 'ID', value: (f) => f.id },
      { header: 'Host', value: (f) => f.host ?? '' },
      { header: 'Detail', value: (f) => f.detail },
    ],
    findings,
  );
}
