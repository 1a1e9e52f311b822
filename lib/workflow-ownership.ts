/**
 * Whether the workflow under one of our ids is ours. Anyone with the Temporal port can start a workflow
 * under an id bootflow derives from a request (boot-<requestId>, delete-<uuid>: uuids are the InstanceId
 * search attribute). Ours means: the run's first event, as stored, names the expected workflow type on the
 * controller's queue, with an input that this deployment's codec key decrypts (AES-GCM authenticates it:
 * only a holder of the key made it) naming the same request or server. The client and the compute API both
 * check it before they follow or answer for a run they did not start.
 */
import type { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { isEncryptedPayload } from './codec/encryption-codec';
import { CONTROLLER_QUEUE } from '../workflows/names';

/** What makes a workflow ours: its type, and an input (decrypted) naming our request or server. */
export interface Ownership {
  workflowType: string;
  /** Checked on the decrypted input of the run's first event. */
  owns(input: Record<string, unknown>): boolean;
  /** For the error: "the boot of request req-1", "the delete of server <uuid>". */
  what: string;
}

export function bootOwnership(requestId: string): Ownership {
  return {
    workflowType: 'createInstance',
    owns: (input) => input.requestId === requestId,
    what: `the boot of request ${requestId}`,
  };
}

export function deleteOwnership(instanceUuid: string): Ownership {
  return {
    workflowType: 'deleteInstance',
    owns: (input) => input.instanceUuid === instanceUuid,
    what: `the delete of server ${instanceUuid}`,
  };
}

/** A workflow under our id that this deployment did not start (the message says what is wrong with it). */
export class ForeignWorkflowError extends Error {
  override readonly name = 'ForeignWorkflowError';
  constructor(
    readonly workflowId: string,
    what: string,
    readonly why: string,
  ) {
    super(
      `Workflow ${workflowId} is not ${what}: ${why}. Someone else started a workflow under this id; ` +
        'an operator should inspect and terminate it (`temporal workflow describe/terminate`)',
    );
  }
}

async function decodeInput(client: Client, payload: Payload): Promise<unknown> {
  let decoded = payload;
  for (const codec of [...(client.options.dataConverter.payloadCodecs ?? [])].reverse()) {
    [decoded] = (await codec.decode([decoded])) as [Payload];
  }
  return defaultPayloadConverter.fromPayload(decoded);
}

/**
 * Reads the run's first event as stored (no codec on the way; the latest run when runId is not given) and
 * checks it is ours; throws ForeignWorkflowError if not. Returns the identity of the client that started it.
 */
export async function checkOwnership(
  client: Client,
  workflowId: string,
  runId: string | undefined,
  expected: Ownership,
): Promise<{ startedBy: string }> {
  const history = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId, ...(runId ? { runId } : {}) },
    maximumPageSize: 1,
  });
  const started = history.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const refuse = (why: string) => new ForeignWorkflowError(workflowId, expected.what, why);
  if (!started) throw refuse('its history has no start event');
  const type = started.workflowType?.name ?? '';
  if (type !== expected.workflowType) throw refuse(`it runs ${type || 'an unknown type'}`);
  if (started.taskQueue?.name !== CONTROLLER_QUEUE) {
    throw refuse(`it runs on task queue ${started.taskQueue?.name ?? '?'}, not ${CONTROLLER_QUEUE}`);
  }
  const payload = started.input?.payloads?.[0];
  if (!payload || !isEncryptedPayload(payload as Payload)) throw refuse('its input is not encrypted');
  let input: unknown;
  try {
    input = await decodeInput(client, payload as Payload);
  } catch {
    throw refuse("its input does not decrypt with this deployment's key");
  }
  if (typeof input !== 'object' || input === null || !expected.owns(input as Record<string, unknown>)) {
    throw refuse('its input is for another request');
  }
  return { startedBy: started.identity ?? '' };
}
