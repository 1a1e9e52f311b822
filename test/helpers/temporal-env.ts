/** Test environments on the resolved Temporal binaries (project virtualenv first, SDK download last). */
import type { DataConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ephemeralExecutable } from '../../lib/temporal-binaries';
import { installTemporalRuntime } from '../../lib/logger';

/** `dataConverter` goes to the environment's client; give the same one to Worker.create. */
export async function timeSkippingEnv(dataConverter?: DataConverter): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: ephemeralExecutable('test-server') },
    ...(dataConverter ? { client: { dataConverter } } : {}),
  });
}

export async function devServerEnv(
  extraArgs: string[] = [],
  dataConverter?: DataConverter,
): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: { executable: ephemeralExecutable('cli'), extraArgs },
    ...(dataConverter ? { client: { dataConverter } } : {}),
  });
}
