/**
 * Loaded by path (DataConverter.failureConverterPath) in the worker, the client and the workflow sandbox, so it
 * imports nothing but @temporalio/common. Error messages and stack traces move into an encoded payload that the
 * codec encrypts; without this they would sit in the history as plain text.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
