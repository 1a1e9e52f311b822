/**
 * What the OpenStack API role needs: the controller-side services (the API reads their databases directly,
 * as nova-api reads the Nova database), a Temporal client (everything long or spanning services starts a
 * workflow and answers 202, as the real APIs do), and the public base URL every catalog endpoint hangs off.
 */
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Cloud } from '../cloud';

export interface ApiDeps {
  cloud: Cloud;
  temporal: Client;
  /** Base of every endpoint in the catalog and in `links`, without a trailing slash: `http://127.0.0.1:8770`. */
  publicUrl: string;
  /** Keystone's region for the catalog. */
  region: string;
  log: Logger;
  /** POST /servers doing their work at once; the others wait in arrival order (default 4: create-admission.ts). */
  concurrentCreates?: number;
}

/** The one listener's default port (`--api-port`, `BOOTFLOW_API_PORT`). */
export const DEFAULT_API_PORT = 8770;
export const DEFAULT_REGION = 'RegionOne';
