/**
 * Nova's instance state vocabulary (nova/compute/vm_states.py, task_states.py, power_state.py) and the API
 * status the servers API shows for a (vm_state, task_state) pair (nova/api/openstack/common.py _STATE_MAP).
 */
export const VM_STATES = {
  BUILDING: 'building',
  ACTIVE: 'active',
  STOPPED: 'stopped',
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
  // Evacuate (a rebuild on another host): set by nova-api, then by the conductor before the spawn.
  REBUILDING: 'rebuilding',
  REBUILD_SPAWNING: 'rebuild_spawning',
  DELETING: 'deleting',
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

export type ApiStatus = 'BUILD' | 'ACTIVE' | 'SHUTOFF' | 'ERROR' | 'DELETED' | 'UNKNOWN';

/**
 * Nova's _STATE_MAP restricted to the states bootflow uses. Only 'default' entries apply to our task states:
 * Nova maps rebooting/rebuilding/resizing specially, but a 'deleting' task shows the vm_state's default
 * status (an ACTIVE server being deleted is still ACTIVE), and vm_state error is ERROR whatever the task.
 */
const STATE_MAP: Record<VmState, { default: ApiStatus } & Partial<Record<TaskState, ApiStatus>>> = {
  active: { default: 'ACTIVE' },
  building: { default: 'BUILD' },
  stopped: { default: 'SHUTOFF' },
  error: { default: 'ERROR' },
  deleted: { default: 'DELETED' },
};

export function statusFromState(vmState: string, taskState: string | null): ApiStatus {
  const taskMap = (STATE_MAP as Record<string, (typeof STATE_MAP)[VmState] | undefined>)[vmState];
  if (!taskMap) return 'UNKNOWN';
  return (taskState !== null && taskMap[taskState as TaskState]) || taskMap.default;
}
