/**
 * Registers the boot workflows' custom search attributes on a namespace if they are missing. Without them a
 * workflow that upserts them fails its tasks forever, so workers check at start (a dev server started by
 * the demo already has them; a real cluster gets them here, or from an operator beforehand).
 */
import type { Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { BOOT_SEARCH_ATTRIBUTES } from '../workflows/search-attributes';

type OperatorConnection = Pick<Connection, 'operatorService'>;

const GRPC_UNIMPLEMENTED = 12;

async function registeredNames(connection: OperatorConnection, namespace: string): Promise<string[]> {
  try {
    const known = await connection.operatorService.listSearchAttributes({ namespace });
    return Object.keys(known.customAttributes ?? {});
  } catch (err) {
    // The time-skipping test server cannot list them, but adding them again is harmless there.
    if ((err as { code?: unknown }).code === GRPC_UNIMPLEMENTED) return [];
    throw err;
  }
}

export async function ensureSearchAttributes(
  connection: OperatorConnection,
  namespace: string,
): Promise<string[]> {
  const registered = new Set(await registeredNames(connection, namespace));
  const missing = Object.keys(BOOT_SEARCH_ATTRIBUTES).filter((name) => !registered.has(name));
  if (missing.length === 0) return [];
  const KEYWORD = temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((name) => [name, KEYWORD])),
  });
  return missing;
}
