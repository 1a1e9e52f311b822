/**
 * nova-conductor's side of a compute service: the host's registration (Nova service record + compute node
 * and its Placement resource provider), its periodic state reports and power-state syncs. The compute worker never opens a
 * controller database; it signals its `compute-service-<host>` workflow, which runs these on the controller.
 */
import { log } from '@temporalio/activity';
import { systemClock, type Clock } from '../cloud/clock';
import { registerComputeHost, type HostSpec } from '../cloud/hosts';
import {
  verifyServiceMessage,
  type Nova,
  type PowerSyncInput,
  type PowerSyncResult,
  type ServiceProof,
} from '../cloud/nova';
import type { Placement } from '../cloud/placement';
import { adaptAll } from './failures';

/** A report older than Nova's service_down_time says nothing about the host now: it is dropped. */
export const STALE_REPORT_MS = 60_000;

export interface ComputeServiceServices {
  nova: Nova;
  placement: Placement;
  clock?: Clock;
  /**
   * The compute hosts' service keys (cloud/nova/service-credentials.ts): registrations and heartbeats must
   * carry the host's MAC. worker.ts always gives them; only in-process test set-ups run without.
   */
  serviceKeys?: ReadonlyMap<string, Buffer>;
}

/** A compute host's proof, checked; a refusal is logged for the audit trail and thrown (not retryable). */
function checkProof(
  keys: ReadonlyMap<string, Buffer> | undefined,
  host: string,
  kind: 'register' | 'heartbeat',
  proof: ServiceProof | undefined,
): void {
  if (!keys) return;
  try {
    verifyServiceMessage(keys, host, kind, proof);
  } catch (err) {
    log.warn('compute service refused', {
      audit: 'compute-service-refused',
      host,
      kind,
      reason: (err as Error).message,
    });
    throw err;
  }
}

export interface ReportResult {
  recorded: boolean;
  up: boolean;
  reportCount: number;
  lastHeartbeatAt: number | null;
}

export function createComputeServiceActivities({
  nova,
  placement,
  clock = systemClock,
  serviceKeys,
}: ComputeServiceServices) {
  return adaptAll({
    /** Registers (or re-registers, with its current resources) the host; idempotent. */
    async registerComputeService(
      signed: HostSpec & { proof?: ServiceProof },
    ): Promise<{ host: string; nodeUuid: string }> {
      const { proof, ...spec } = signed;
      checkProof(serviceKeys, spec.host, 'register', proof);
      return registerComputeHost({ nova, placement }, spec);
    },

    /**
     * The controller's half of the host's periodic power-state sync (Nova's _sync_power_states): power_state
     * recorded, ACTIVE instances found shut down set STOPPED, instances with a task_state skipped.
     */
    async syncPowerStates(input: PowerSyncInput): Promise<PowerSyncResult> {
      return nova.syncPowerStates(input);
    },

    /** ServiceGroup report_state for a report sent at `sentAt` (the compute host's clock, epoch ms). */
    async reportComputeServiceState({
      host,
      sentAt,
      mac,
    }: {
      host: string;
      sentAt: number;
      /** The host's MAC of this heartbeat (ServiceProof). */
      mac?: string;
    }): Promise<ReportResult> {
      checkProof(serviceKeys, host, 'heartbeat', mac === undefined ? undefined : { sentAt, mac });
      if (clock.now() - sentAt > STALE_REPORT_MS) {
        const current = await nova.getComputeHost(host);
        return {
          recorded: false,
          up: current.up,
          reportCount: current.reportCount,
          lastHeartbeatAt: current.lastHeartbeatAt,
        };
      }
      const beat = await nova.heartbeat(host);
      return {
        recorded: true,
        up: beat.up,
        reportCount: beat.reportCount,
        lastHeartbeatAt: beat.lastHeartbeatAt,
      };
    },
  });
}

export type ComputeServiceActivities = ReturnType<typeof createComputeServiceActivities>;
