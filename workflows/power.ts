/**
 * The power actions (`openstack server stop|start|reboot`, Nova's os-stop, os-start and reboot server
 * actions): each a server operation (server-operation.ts) whose step on the host is the driver's power
 * off, power on or reboot, with the power state read back from the driver, as nova-compute's
 * stop_instance, start_instance and reboot_instance do.
 */
import { patched } from '@temporalio/workflow';
import { parseRebootRequest, parseServerOperationRequest } from './request-schema';
import { call, type ComputeStubs } from './proxies';
import { runServerOperation } from './server-operation';
import type { RebootRequest, ServerOperationRequest, ServerOperationResult } from './types';

/**
 * A cancelled operation used to go on (undo, task_state back) without waiting for the host's call to stop,
 * which could still power the guest off or on afterwards; since this patch it waits.
 */
export const POWER_WAITS_FOR_CANCEL = 'power-waits-for-cancel';

function power(compute: ComputeStubs): ComputeStubs['power'] {
  return patched(POWER_WAITS_FOR_CANCEL) ? compute.powerWaitingCancel : compute.power;
}

export async function stopInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server stop request');
  return runServerOperation(request, {
    name: 'stop',
    run: ({ compute, host }) =>
      call(power(compute).powerOff, `nova-compute: power off on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}

export async function startInstance(input: ServerOperationRequest): Promise<ServerOperationResult> {
  const request = parseServerOperationRequest(input, 'server start request');
  return runServerOperation(request, {
    name: 'start',
    run: ({ compute, host }) =>
      call(power(compute).powerOn, `nova-compute: power on on ${host}`, {
        instanceUuid: request.instanceUuid,
      }),
  });
}

export async function rebootInstance(input: RebootRequest): Promise<ServerOperationResult> {
  const request = parseRebootRequest(input);
  return runServerOperation(request, {
    name: request.type === 'HARD' ? 'reboot-hard' : 'reboot-soft',
    // Nova's reboot failure: a guest left not running puts the server in ERROR.
    readPowerStateOnFailure: true,
    run: ({ compute, host }) =>
      call(power(compute).reboot, `nova-compute: ${request.type} reboot on ${host}`, {
        instanceUuid: request.instanceUuid,
        type: request.type,
      }),
  });
}
