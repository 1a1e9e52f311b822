/**
 * How bootflow's client reaches Temporal: the envconfig settings (lib/connection.ts) and THE data converter
 * with payload encryption (workers use the same one), so that passwords and tokens in inputs and results are
 * ciphertext in every stored history. The client uses the light gRPC connection, not the worker's native one.
 */
import { Client, Connection } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
// The codec's modules one by one: its index also loads the codec server and the worker-side logger.
import { encryptingDataConverter } from '../codec/data-converter';
import { loadKeyring } from '../codec/key-file';
import { KeyringError, type Keyring } from '../codec/keyring';
import { temporalSettings } from '../connection';
import { workflowUiLink } from '../dev-server';
import { EXIT, UserError } from './usage';

export { dataDirFromEnv } from './usage';

/** The keyring from BOOTFLOW_CODEC_KEYS or `<dataDir>/codec-keys.json`; a clear user error when missing. */
export function loadKeyringOrExplain(dataDir: string): Keyring {
  try {
    return loadKeyring({ dataDir });
  } catch (err) {
    if (err instanceof KeyringError) throw new UserError(err.message, EXIT.USAGE);
    throw err;
  }
}

/** The one place the payload codec is plugged in, for workers and clients. */
export function bootflowDataConverter(keyring: Keyring): DataConverter {
  return encryptingDataConverter(keyring);
}

export interface TemporalHandle {
  connection: Connection;
  client: Client;
  namespace: string;
  address: string;
  dataConverter: DataConverter;
  close(): Promise<void>;
}

export async function connectTemporal(options: {
  keyring: Keyring;
  identity?: string;
}): Promise<TemporalHandle> {
  const settings = temporalSettings();
  const { address, tls, metadata, apiKey } = settings.connectionOptions;
  let connection: Connection;
  try {
    connection = await Connection.connect({
      address,
      // The SDK's default: 5 s was seen to run out for a client started beside 49 others on a busy 2-core
      // machine, where the server was up but slow to accept.
      connectTimeout: '10 seconds',
      ...(tls !== undefined ? { tls } : {}),
      ...(metadata ? { metadata } : {}),
      ...(apiKey ? { apiKey } : {}),
    });
  } catch (err) {
    throw new UserError(
      `Cannot reach Temporal at ${settings.address} (${(err as Error).message}). ` +
        'Start it with `npm start`, or set TEMPORAL_ADDRESS to a running Temporal service.',
      EXIT.UNAVAILABLE,
    );
  }
  const dataConverter = bootflowDataConverter(options.keyring);
  const client = new Client({
    connection,
    namespace: settings.namespace,
    dataConverter,
    ...(options.identity ? { identity: options.identity } : {}),
  });
  return {
    connection,
    client,
    namespace: settings.namespace,
    address: settings.address,
    dataConverter,
    close: () => connection.close(),
  };
}

/** The Web UI's base URL: BOOTFLOW_UI_URL, else the dev server's on TEMPORAL_UI_PORT (8233). */
export function webUiBase(env: NodeJS.ProcessEnv = process.env): string {
  if (env.BOOTFLOW_UI_URL) return env.BOOTFLOW_UI_URL.replace(/\/$/, '');
  return `http://localhost:${env.TEMPORAL_UI_PORT ?? '8233'}`;
}

export function webUiLink(
  workflowId: string,
  namespace = 'default',
  env: NodeJS.ProcessEnv = process.env,
): string {
  return workflowUiLink(webUiBase(env), workflowId, namespace);
}
