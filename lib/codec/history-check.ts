/**
 * A start-up check that the loaded keyring can read what is already stored: a wrong key would otherwise show up
 * only later, as workflow tasks that fail to decode. It decrypts the input of a workflow's first event, read raw
 * through the gRPC service (no codec), and throws a clear PayloadDecryptionError if it cannot.
 */
import type { Client } from '@temporalio/client';
import { AesGcmPayloadCodec, encryptedKeyId, isEncryptedPayload } from './encryption-codec';
import type { Keyring } from './keyring';

export interface HistoryCheckResult {
  workflowId?: string;
  /** Key ids seen on the checked payloads; empty when nothing was encrypted yet. */
  keyIdsSeen: string[];
}

/**
 * Checks `workflowId`, or the most recently started workflow of the namespace when none is given (needs a server
 * with visibility, such as the dev server). A namespace with no workflows passes.
 */
export async function verifyKeyringAgainstHistory(
  client: Client,
  keyring: Keyring,
  options: { workflowId?: string } = {},
): Promise<HistoryCheckResult> {
  const service = client.workflowService;
  const namespace = client.options.namespace;
  let workflowId = options.workflowId;
  if (!workflowId) {
    const listed = await service.listWorkflowExecutions({ namespace, pageSize: 1 });
    workflowId = listed.executions?.[0]?.execution?.workflowId ?? undefined;
    if (!workflowId) return { keyIdsSeen: [] };
  }
  const history = await service.getWorkflowExecutionHistory({
    namespace,
    execution: { workflowId },
    maximumPageSize: 1,
  });
  const started = history.history?.events?.[0]?.workflowExecutionStartedEventAttributes;
  const payloads = (started?.input?.payloads ?? []).filter(isEncryptedPayload);
  await new AesGcmPayloadCodec(keyring).decode(payloads);
  const keyIdsSeen = [...new Set(payloads.map((p) => encryptedKeyId(p) ?? ''))];
  return { workflowId, keyIdsSeen };
}
