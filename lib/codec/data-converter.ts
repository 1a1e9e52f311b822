/**
 * The DataConverter that every Client, Worker and TestWorkflowEnvironment of bootflow uses:
 *   new Client({ connection, dataConverter })
 *   Worker.create({ ..., dataConverter })
 *   TestWorkflowEnvironment.createTimeSkipping({ client: { dataConverter } })  (the worker still takes its own)
 * Payloads (inputs, results, heartbeats, memos, headers) and failure messages and stacks are encrypted.
 */
import type { DataConverter } from '@temporalio/common';
import { AesGcmPayloadCodec } from './encryption-codec';
import type { Keyring } from './keyring';

export const FAILURE_CONVERTER_PATH = require.resolve('./failure-converter');

export function encryptingDataConverter(keyring: Keyring): DataConverter {
  return {
    payloadCodecs: [new AesGcmPayloadCodec(keyring)],
    failureConverterPath: FAILURE_CONVERTER_PATH,
  };
}
