/**
 * Pause, unpause, suspend and resume (`openstack server pause|unpause|suspend|resume`, Nova's pause,
 * unpause, suspend and resume server actions): each a server operation (server-operation.ts) whose step on
 * the host is the driver's call, with the power state read back from the driver, as nova-compute's
 * pause_instance, unpause_instance, suspend_instance and resume_instance do. A cancelled one waits until
 * the host's call has stopped (as the power actions do since their patch), so the guest is never left
 * paused or saved while the server says otherwise.
 */
import { parseServerOperationRequest } from './request-schema';
import { call } from './proxies';
import { runServerOperation } from './server-operation';
import type { ServerOperationRequest, ServerOperationResult } from './types';

export async function pauseInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server pause request');
  return runServerOperation(request, {
    name: 'pause',
    run: ({ compute, host }) =>
      call(compute.powerWaitingCancel.pause, `nova-compute: pause on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}

export async function unpauseInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server unpause request');
  return runServerOperation(request, {
    name: 'unpause',
    run: ({ compute, host }) =>
      call(compute.powerWaitingCancel.unpause, `nova-compute: unpause on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}

export async function suspendInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server suspend request');
  return runServerOperation(request, {
    name: 'suspend',
    run: ({ compute, host }) =>
      call(compute.powerWaitingCancel.suspend, `nova-compute: suspend (save the guest's state) on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}

export async function resumeInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server resume request');
  return runServerOperation(request, {
    name: 'resume',
    run: ({ compute, host }) =>
      call(compute.powerWaitingCancel.resume, `nova-compute: resume (restore the guest's state) on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}
