/**
 * nova-conductor's side of a compute service: the host's registration (Nova service record + compute node
 * and its Placement resource provider), its periodic state reports and power-state syncs. The compute worker never opens a
 * controller database; it signals its `compute-service-<host>` workflow, which runs these on the controller.
 */
import { systemClock, type Clock } from '../cloud/clock';
import { registerComputeHost, type HostSpec } from '../cloud/hosts';
import type { Nova, PowerSyncInput, PowerSyncResult } from '../cloud/nova';
import type { Placement } from '../cloud/placement';
import { adaptAll } from './failures';

/** A report older than Nova's service_down_time says nothing about the host now: it is dropped. */
export const STALE_REPORT_MS = 60_000;

export interface ComputeServiceServices {
  nova: Nova;
  placement: Placement;
  clock?: Clock;
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
}: ComputeServiceServices) {
  return adaptAll({
    /** Registers (or re-registers, with its current resources) the host; idempotent. */
    async registerComputeService(spec: HostSpec): Promise<{ host: string; nodeUuid: string }> {
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
    }: {
      host: string;
      sentAt: number;
    }): Promise<ReportResult> {
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
