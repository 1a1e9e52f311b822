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
  /** The catalog's region (the bootstrap registers the catalog there; the tokens' catalog is Keystone's rows). */
  region: string;
  log: Logger;
  /** POST /servers doing their work at once; the others wait in arrival order (default 4: create-admission.ts). */
  concurrentCreates?: number;
  /**
   * Boots are started with `requestEagerStart`: set where `temporal` is on the NativeConnection of a
   * controller worker in this process (worker.ts with the controller role), which then gets the boot's
   * first workflow task in the start RPC's answer, no poll. The SDK refuses it on any other connection.
   */
  eagerStart?: boolean;
}

/** The one listener's default port (`--api-port`, `BOOTFLOW_API_PORT`). */
export const DEFAULT_API_PORT = 8770;
export const DEFAULT_REGION = 'RegionOne';
