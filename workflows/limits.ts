/** Defaults for the operator knobs of a boot, with the Nova option each one mirrors. */
import type { BootTimeouts } from './types';

export const DEFAULT_MAX_ATTEMPTS = 3; // [scheduler] max_attempts

export const DEFAULT_TIMEOUTS: Required<BootTimeouts> = {
  // A nova-compute that has not picked up work in 30 s is treated as down (its RPC would time out too).
  hostPickupMs: 30_000,
  // [DEFAULT] vif_plugging_timeout = 300
  vifPluggedMs: 300_000,
  // [DEFAULT] block_device_allocate_retries (60) × block_device_allocate_retries_interval (3 s)
  volumeAvailableMs: 180_000,
};

export function resolveTimeouts(given: BootTimeouts | undefined): Required<BootTimeouts> {
  return {
    hostPickupMs: given?.hostPickupMs ?? DEFAULT_TIMEOUTS.hostPickupMs,
    vifPluggedMs: given?.vifPluggedMs ?? DEFAULT_TIMEOUTS.vifPluggedMs,
    volumeAvailableMs: given?.volumeAvailableMs ?? DEFAULT_TIMEOUTS.volumeAvailableMs,
  };
}

/**
 * Polling intervals of the durable waits: start at 1 s and double, up to 10 s, or to a sixtieth of the
 * bound when the operator allows a long wait (a 3-hour volume build is polled every 3 minutes, not 1000
 * times). Nova polls every 1-3 s for its default few minutes.
 */
export const POLL_INITIAL_MS = 1_000;
export const POLL_MAX_MS = 10_000;
export function nextPollDelay(previousMs: number, boundMs: number): number {
  return Math.min(Math.max(POLL_MAX_MS, Math.floor(boundMs / 60)), previousMs * 2);
}
