/**
 * The data that crosses the workflow boundary: the boot request, what each service role hands back, and
 * what the workflow returns and shows in its `status` query. Plain serialisable shapes only (they travel
 * through Temporal payloads); no secrets in anything an activity returns except the Keystone token.
 */
import type { ImageLocation } from '../cloud/glance/types';
import type { DhcpDetails } from '../common/dhcp';

/** Password credentials, scoped to a project (Keystone v3 password auth). */
export interface PasswordCredentials {
  username: string;
  password: string;
  userDomainName?: string;
  projectName: string;
  projectDomainName?: string;
}

/**
 * An operation grant for this one workflow (what client.ts and the OpenStack API send: Keystone signs it,
 * from the caller's token, for this workflow's type and id; it expires with that token and is good for
 * nothing else). `token` and `credentials` are the shapes older clients sent: accepted by the input schema
 * so that stored histories replay, and refused by the authenticate activity, so no new workflow runs on one.
 */
export type BootAuth = { grant: string } | { token: string } | { credentials: PasswordCredentials };

/** Operator knobs with Nova's names in mind; every one has a default (see workflows/limits.ts). */
export interface BootTimeouts {
  /** How long work may wait on a `compute@<host>` queue before the host counts as down (ms). */
  hostPickupMs?: number;
  /** Nova's vif_plugging_timeout: how long to wait for network-vif-plugged (ms). */
  vifPluggedMs?: number;
  /** Nova's block_device_allocate_retries × interval: how long a new volume may stay `creating` (ms). */
  volumeAvailableMs?: number;
}

export interface BootRequest {
  /** The client's request id (x-openstack-request-id); the workflow id and every idempotency key derive from it. */
  requestId: string;
  /**
   * The instance's uuid when the caller picks it (the compute API does, to answer 202 with the server's id
   * at once, as nova-api does); otherwise the workflow draws one.
   */
  instanceUuid?: string;
  auth: BootAuth;
  name: string;
  flavor: string;
  /** Image id or name: booted from directly, or copied into the boot volume. */
  image: string;
  /**
   * Boot from a new volume created from the image (source=image, destination=volume), or with `volumeId`
   * from that existing volume (source=volume; `sizeGb` is its size, `image` the image it was made from).
   * The volume outlives the server unless deleteOnTermination is true (Nova's default is false).
   */
  bootVolume?: { sizeGb: number; deleteOnTermination?: boolean; volumeId?: string };
  /** Network ids or names; at least one. */
  networks: string[];
  availabilityZone?: string;
  /** A key pair of the caller's user, recorded on the instance (Nova's key_name). */
  keyName?: string;
  /** Server metadata, recorded on the instance. */
  metadata?: Record<string, string>;
  /** Nova's accessIPv4 / accessIPv6: addresses the user says reach the server, recorded as given. */
  accessIPv4?: string;
  accessIPv6?: string;
  /** Nova's user_data (base64), recorded on the instance. */
  userData?: string;
  /** Server tags (2.52+ on create), recorded on the instance. */
  tags?: string[];
  /** Nova's scheduler max_attempts (default 3). */
  maxAttempts?: number;
  timeouts?: BootTimeouts;
}

/** What Keystone's authentication yields, without the password. */
export interface Session {
  token: string;
  expiresAt: number;
  userId: string;
  projectId: string;
  projectName: string;
  roles: string[];
}

export interface FlavorSpec {
  id: string;
  name: string;
  vcpus: number;
  memoryMb: number;
  rootGb: number;
  ephemeralGb: number;
  swapMb: number;
}

/** Glance's ImageLocation: what a compute host or Cinder needs to fetch and verify the image. */
export type { ImageLocation };

export interface ImageSpec {
  id: string;
  name: string;
  minDisk: number;
  minRam: number;
  properties: Record<string, string>;
  location: ImageLocation;
  /** An AMI's kernel (aki) and ramdisk (ari), from its kernel_id / ramdisk_id properties. */
  kernel?: ImageLocation;
  ramdisk?: ImageLocation;
}

export interface NetworkRef {
  id: string;
  name: string;
}

/** Quota the boot holds while it runs (nova's instances/cores/ram, plus the boot volume's). */
export type QuotaAmounts = Partial<
  Record<'instances' | 'cores' | 'ram' | 'volumes' | 'gigabytes' | 'ports', number>
>;

/** nova-api's verdict on the request: everything later steps need, already checked. */
export interface BootPlan {
  projectId: string;
  userId: string;
  name: string;
  flavor: FlavorSpec;
  image: ImageSpec;
  /** With `volumeId`, an existing volume the server boots from (none is created). */
  bootVolume: { sizeGb: number; deleteOnTermination: boolean; volumeId?: string } | null;
  quota: QuotaAmounts;
  availabilityZone: string | null;
}

export interface HostTarget {
  host: string;
  nodeUuid: string;
  providerUuid: string;
}

export interface Selection {
  selected: HostTarget;
  alternates: HostTarget[];
}

export interface FixedIp {
  subnetId: string;
  ipAddress: string;
}

/** A port as the compute host needs it to plug the VIF (no Neutron database behind it). */
export interface PortDescription {
  portId: string;
  networkId: string;
  networkName: string;
  macAddress: string;
  fixedIps: FixedIp[];
  vifType: string;
  /** Once bound: the network's DHCP-enabled subnet and DHCP port, for the host's DHCP agent (null: none). */
  dhcp?: DhcpDetails | null;
}

export interface PluggedVif {
  portId: string;
  bridge: string;
  tap: string;
}

export interface VolumeConnectionInfo {
  driverVolumeType: 'file';
  path: string;
}

export interface BootVolume {
  volumeId: string;
  sizeGb: number;
  deleteOnTermination: boolean;
}

export interface AttachedVolume extends BootVolume {
  attachmentId: string;
  device: string;
  connectionInfo: VolumeConnectionInfo;
}

export interface SpawnSpec {
  uuid: string;
  name: string;
  flavor: FlavorSpec;
  /** The image in the host's cache, when booting from image. */
  baseImagePath: string | null;
  /** An AMI's kernel and ramdisk in the host's cache (absent for other images). */
  kernelPath?: string;
  ramdiskPath?: string;
  ports: Array<PortDescription & PluggedVif>;
  volumes: Array<{ volumeId: string; path: string; device: string }>;
}

export interface SpawnResult {
  powerState: number;
  diskPath: string | null;
}

export interface StepTiming {
  step: string;
  host?: string;
  startedAt: number;
  endedAt?: number;
  ms?: number;
  outcome?: 'ok' | 'failed' | 'cancelled';
}

export interface LastError {
  type: string;
  message: string;
  host?: string;
  /** Whether a reschedule followed. */
  rescheduled?: boolean;
}

/** The `status` query: what the client and the Web UI show while a boot runs and after. */
export interface BootStatus {
  requestId: string;
  instanceUuid: string | null;
  name: string;
  step: string;
  vmState: string | null;
  taskState: string | null;
  powerState: number;
  host: string | null;
  attempt: number;
  maxAttempts: number;
  triedHosts: string[];
  timings: StepTiming[];
  lastError: LastError | null;
  /** Compensations run so far, newest last ("neutron: delete ports of …"). */
  compensations: string[];
  done: boolean;
}

export interface ServerAddress {
  addr: string;
  macAddress: string;
  version: 4;
  portId: string;
}

/** What the workflow returns: the server as `openstack server show` would present it, plus timings. */
export interface BootResult {
  id: string;
  name: string;
  status: 'ACTIVE';
  host: string;
  vmState: 'active';
  powerState: number;
  launchedAt: number;
  addresses: Record<string, ServerAddress[]>;
  volumes: Array<{ id: string; device: string; deleteOnTermination: boolean }>;
  attempts: number;
  triedHosts: string[];
  timings: StepTiming[];
}

export interface DeleteRequest {
  requestId: string;
  auth: BootAuth;
  instanceUuid: string;
  timeouts?: Pick<BootTimeouts, 'hostPickupMs'> & { createStopMs?: number };
}

export interface DeleteResult {
  instanceUuid: string;
  outcome: 'deleted' | 'already-deleted';
  host: string | null;
  /** The host was unreachable: deleted locally, as Nova does for a down compute service. */
  localDelete: boolean;
  cancelledBuild: boolean;
  /** The delete_on_termination volumes deleted (or already gone). */
  deletedVolumes: string[];
  /**
   * The delete_on_termination volumes kept, and why (Cinder refused: the user has snapshots of it), as
   * Nova's _cleanup_volumes goes on past a refusal. Absent from the results of runs before the patch
   * delete-reports-kept-volumes, which listed such a volume among the deleted.
   */
  keptVolumes?: Array<{ id: string; reason: string }>;
  deletedPorts: string[];
}

/** What deleting a server's delete_on_termination volume came to (activities/volume.ts deleteServerVolume). */
export interface ServerVolumeOutcome {
  outcome: 'deleted' | 'gone' | 'kept';
  /** Why it was kept. */
  reason?: string;
}

/** What the delete needs to know about the instance, read by nova-api after the policy check. */
export interface InstanceSummary {
  uuid: string;
  requestId: string;
  projectId: string;
  host: string | null;
  vmState: string;
  taskState: string | null;
  /** Nova's power_state number (1 running, 4 shutdown, 0 no state). */
  powerState: number;
  /** When its build finished (null: never built). Absent from the answers of older workers. */
  launchedAt?: number | null;
  deleted: boolean;
}

/** `openstack server add volume` / `server remove volume`: one volume on one running server. */
export interface VolumeActionRequest {
  requestId: string;
  auth: BootAuth;
  instanceUuid: string;
  volumeId: string;
  timeouts?: Pick<BootTimeouts, 'hostPickupMs'>;
}

/** Nova's volumeAttachment body, and where the volume is connected. */
export interface VolumeActionResult {
  instanceUuid: string;
  volumeId: string;
  attachmentId: string;
  host: string;
  /** The guest's device (`vdb`, ...); null after a detach. */
  device: string | null;
}

/** The day-two operations the workflows run (cloud/nova/operations.ts's rules, by the same names). */
export type ServerOperationName =
  | 'stop'
  | 'start'
  | 'reboot-soft'
  | 'reboot-hard'
  | 'rebuild'
  | 'snapshot'
  | 'pause'
  | 'unpause'
  | 'suspend'
  | 'resume';

/** A day-two operation on one server (stop, start, reboot, ...), from the servers API or the client. */
export interface ServerOperationRequest {
  /** Names the instance action (`openstack server event show`) and, with the server, the workflow. */
  requestId: string;
  auth: BootAuth;
  instanceUuid: string;
  timeouts?: Pick<BootTimeouts, 'hostPickupMs'>;
}

export interface RebootRequest extends ServerOperationRequest {
  /** Nova's reboot types: SOFT asks the guest (ACPI), HARD resets it. */
  type: 'SOFT' | 'HARD';
}

/** Nova's rebuild: the new image (validated by nova-api) and the body's name, metadata and access IPs. */
export interface RebuildRequest extends ServerOperationRequest {
  rebuild: {
    imageRef: string;
    name?: string;
    metadata?: Record<string, string>;
    accessIPv4?: string;
    accessIPv6?: string;
  };
}

/** Nova's createImage of an image-backed server: the image nova-api created (queued) for the snapshot. */
export interface SnapshotRequest extends ServerOperationRequest {
  snapshot: { imageId: string };
}

/** What the host's rebuild needs (rebuildPlan): the new image's location, the guest's name and flavor. */
export interface RebuildPlan {
  name: string;
  flavor: FlavorSpec;
  image: ImageSpec;
}

export interface ServerOperationResult {
  instanceUuid: string;
  operation: string;
  host: string;
  vmState: string;
  /** Read back from the host's driver once the operation finished. */
  powerState: number;
}
