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
