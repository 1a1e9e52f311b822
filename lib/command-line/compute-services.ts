/** Reading the compute services' state from their `compute-service-<host>` workflows (the `state` query). */
import type { Client } from '@temporalio/client';
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
export async function waitForComputeHosts(client: Client, hosts: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set(hosts);
  for (;;) {
    for (const host of [...pending]) {
      const state = await computeServiceState(client, host);
      if (state?.registered && state.up) pending.delete(host);
    }
    if (pending.size === 0) return;
    if (Date.now() > deadline)
      throw new Error(`compute hosts not registered in time: ${[...pending].join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
