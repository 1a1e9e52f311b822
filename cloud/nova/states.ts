/**
 * Nova's instance state vocabulary (nova/compute/vm_states.py, task_states.py, power_state.py) and the API
 * status the servers API shows for a (vm_state, task_state) pair (nova/api/openstack/common.py _STATE_MAP).
 */
export const VM_STATES = {
  BUILDING: 'building',
  ACTIVE: 'active',
  STOPPED: 'stopped',
  PAUSED: 'paused',
  SUSPENDED: 'suspended',
  ERROR: 'error',
  DELETED: 'deleted',
} as const;
export type VmState = (typeof VM_STATES)[keyof typeof VM_STATES];
export const VM_STATE_VALUES = Object.values(VM_STATES) as [VmState, ...VmState[]];

export const TASK_STATES = {
  SCHEDULING: 'scheduling',
  BLOCK_DEVICE_MAPPING: 'block_device_mapping',
  NETWORKING: 'networking',
  SPAWNING: 'spawning',
  // Rebuild and evacuate (a rebuild on another host): set by nova-api, then by the compute host before the
  // guest's disks and before the spawn.
  REBUILDING: 'rebuilding',
  REBUILD_BLOCK_DEVICE_MAPPING: 'rebuild_block_device_mapping',
  REBUILD_SPAWNING: 'rebuild_spawning',
  DELETING: 'deleting',
  // Day two (task_states.py): set by nova-api before the operation's workflow starts.
  POWERING_OFF: 'powering-off',
  POWERING_ON: 'powering-on',
  REBOOTING: 'rebooting',
  REBOOTING_HARD: 'rebooting_hard',
  // createImage (a snapshot): nova-api's, then the compute manager's, then the driver's two.
  IMAGE_SNAPSHOT_PENDING: 'image_snapshot_pending',
  IMAGE_SNAPSHOT: 'image_snapshot',
  IMAGE_PENDING_UPLOAD: 'image_pending_upload',
  IMAGE_UPLOADING: 'image_uploading',
  PAUSING: 'pausing',
  UNPAUSING: 'unpausing',
  SUSPENDING: 'suspending',
  RESUMING: 'resuming',
} as const;
/** null is Nova's "None": no task in progress. */
export type TaskState = (typeof TASK_STATES)[keyof typeof TASK_STATES];
export const TASK_STATE_VALUES = Object.values(TASK_STATES) as [TaskState, ...TaskState[]];

/** Not libvirt's virDomainState, though the numbers match it for backward compatibility (as in Nova). */
export const POWER_STATES = {
  NOSTATE: 0,
  RUNNING: 1,
  PAUSED: 3,
  SHUTDOWN: 4,
  CRASHED: 6,
  SUSPENDED: 7,
} as const;
export type PowerState = (typeof POWER_STATES)[keyof typeof POWER_STATES];
export const POWER_STATE_VALUES = Object.values(POWER_STATES) as [PowerState, ...PowerState[]];

export type ApiStatus =
  | 'BUILD'
  | 'ACTIVE'
  | 'SHUTOFF'
  | 'PAUSED'
  | 'SUSPENDED'
  | 'REBOOT'
  | 'HARD_REBOOT'
  | 'REBUILD'
  | 'ERROR'
  | 'DELETED'
  | 'UNKNOWN';

/**
 * Nova's _STATE_MAP restricted to the states bootflow uses: an ACTIVE server rebooting shows REBOOT or
 * HARD_REBOOT; an ACTIVE, STOPPED or ERROR one being rebuilt (or evacuated) REBUILD; every other task
 * shows the vm_state's default status (an ACTIVE server being deleted or powered off is still ACTIVE, a
 * STOPPED one hard-rebooted still SHUTOFF).
 */
const REBUILD_TASKS = {
  rebuilding: 'REBUILD',
  rebuild_block_device_mapping: 'REBUILD',
  rebuild_spawning: 'REBUILD',
} as const;
const STATE_MAP: Record<VmState, { default: ApiStatus } & Partial<Record<TaskState, ApiStatus>>> = {
  active: { default: 'ACTIVE', rebooting: 'REBOOT', rebooting_hard: 'HARD_REBOOT', ...REBUILD_TASKS },
  building: { default: 'BUILD' },
  stopped: { default: 'SHUTOFF', ...REBUILD_TASKS },
  // Pausing or suspending an ACTIVE server leaves it ACTIVE until done; unpausing or resuming shows the
  // state it leaves (Nova's map has no entry for these tasks).
  paused: { default: 'PAUSED' },
  suspended: { default: 'SUSPENDED' },
  error: { default: 'ERROR', ...REBUILD_TASKS },
  deleted: { default: 'DELETED' },
};

export function statusFromState(vmState: string, taskState: string | null): ApiStatus {
  const taskMap = (STATE_MAP as Record<string, (typeof STATE_MAP)[VmState] | undefined>)[vmState];
  if (!taskMap) return 'UNKNOWN';
  return (taskState !== null && taskMap[taskState as TaskState]) || taskMap.default;
}
