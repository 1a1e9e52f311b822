/**
 * Task queues stand in for OpenStack's RPC topics, and workflow ids derive from the client's request id so
 * that submitting the same request twice finds the first workflow instead of booting a second server.
 */
export const CONTROLLER_QUEUE = 'controller';
export const NETWORK_QUEUE = 'network';

/** nova-compute's topic on one host: only that host's worker polls it. */
export function computeQueue(host: string): string {
  return `compute@${host}`;
}

export function bootWorkflowId(requestId: string): string {
  return `boot-${requestId}`;
}

export function deleteWorkflowId(instanceUuid: string): string {
  return `delete-${instanceUuid}`;
}

/** One workflow per volume attach or detach: the server and the API request that asked for it. */
export function volumeAttachWorkflowId(instanceUuid: string, requestId: string): string {
  return `volume-attach-${instanceUuid}-${requestId}`;
}

export function volumeDetachWorkflowId(instanceUuid: string, requestId: string): string {
  return `volume-detach-${instanceUuid}-${requestId}`;
}

/** One evacuation of a server per request (also a host evacuation's child). */
export function evacuateWorkflowId(instanceUuid: string, requestId: string): string {
  return `evacuate-${instanceUuid}-${requestId}`;
}

/** A compute host's init_host clean-up of guests evacuated while it was down: one per host at a time. */
export function destroyEvacuatedWorkflowId(host: string): string {
  return `destroy-evacuated-${host}`;
}

/**
 * A day-two operation's workflow: one per request on one server (the same request sent again finds it),
 * named after both so the Web UI lists a server's operations together.
 */
export function serverOperationWorkflowId(
  operation: string,
  instanceUuid: string,
  requestId: string,
): string {
  return `${operation}-${instanceUuid}-${requestId}`;
}
