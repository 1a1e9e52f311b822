/** Reading the compute services' state from their `compute-service-<host>` workflows (the `state` query). */
import type { Client } from '@temporalio/client';
import { pollUntil } from '../poll';
import { computeServiceWorkflowId, type ComputeServiceState } from '../../workflows/compute-service';

export async function computeServiceState(
  client: Client,
  host: string,
): Promise<ComputeServiceState | undefined> {
  return client.workflow
    .getHandle(computeServiceWorkflowId(host))
    .query<ComputeServiceState>('state')
    .catch(() => undefined);
}

/** Until every host's registration has gone through the controller and the host reports up. */
export async function waitForComputeHosts(
  client: Client,
  hosts: readonly string[],
  timeoutMs: number,
): Promise<void> {
  const pending = new Set(hosts);
  await pollUntil(
    async () => {
      for (const host of [...pending]) {
        const state = await computeServiceState(client, host);
        if (state?.registered && state.up) pending.delete(host);
      }
      return pending.size === 0 ? true : undefined;
    },
    { timeoutMs, intervalMs: 500, what: () => `compute hosts to register: ${[...pending].join(', ')}` },
  );
}
