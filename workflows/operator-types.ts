/**
 * What the read-only operator workflows return: servers as `openstack server show -f json` presents them
 * (at least id, name, status, host, addresses, volumes, and fault when in ERROR), hypervisors as
 * `openstack hypervisor list --long`, and the leak audit's findings. Plain serialisable shapes only.
 */
import type { BootAuth } from './types';

export type { LeakFinding } from '../cloud/audit';

export interface ServerAddress {
  addr: string;
  macAddress: string;
  version: 4;
  portId: string;
}

export interface ServerVolume {
  id: string;
  device: string | null;
  sizeGb: number;
  deleteOnTermination: boolean;
}

export interface ServerFault {
  code: number;
  message: string;
  details: string | null;
  created: string;
}

/** nova-api's part of a server: the Nova record, its latest fault, names resolved. */
export interface ServerRecord {
  id: string;
  name: string;
  /** The API status (BUILD, ACTIVE, ERROR, DELETED, ...), from vm_state and task_state. */
  status: string;
  vmState: string;
  taskState: string | null;
  powerState: number;
  host: string | null;
  projectId: string;
  userId: string;
  flavor: string;
  /** null when the server boots from a volume. */
  image: { id: string; name: string } | null;
  bootFromVolume: boolean;
  requestId: string;
  created: string;
  launchedAt: string | null;
  fault?: ServerFault;
}

/** The whole server, with neutron's addresses and cinder's volumes added. */
export interface ServerView extends ServerRecord {
  addresses: Record<string, ServerAddress[]>;
  volumes: ServerVolume[];
}

export interface ResourceUse {
  total: number;
  used: number;
  /** What Placement would still allocate ((total − reserved) × ratio − used). */
  free: number;
}

export interface HypervisorView {
  id: string;
  host: string;
  hypervisorType: string;
  state: 'up' | 'down';
  status: 'enabled' | 'disabled';
  disabledReason: string | null;
  lastHeartbeat: string | null;
  vcpus: ResourceUse;
  memoryMb: ResourceUse;
  diskGb: ResourceUse;
  runningVms: number;
}

export interface ListServersRequest {
  auth: BootAuth;
  allProjects?: boolean;
}

export interface ShowServerRequest {
  auth: BootAuth;
  /** A server uuid or a name unique among the servers the caller may see. */
  server: string;
  allProjects?: boolean;
}

export interface AuthOnlyRequest {
  auth: BootAuth;
}

export interface AuditRequest {
  auth: BootAuth;
  /** Builds may be running: BUILD instances are not reported as stuck. */
  buildsInFlight?: boolean;
  /** How long a compute host may take to pick up its part before it is reported unreachable (default 30 s). */
  hostPickupMs?: number;
}
