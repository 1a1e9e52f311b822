/** Test environments on the resolved Temporal binaries (project virtualenv first, SDK download last). */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ephemeralExecutable } from '../../lib/temporal-binaries';
import { installTemporalRuntime } from '../../lib/logger';

export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: ephemeralExecutable('test-server') },
  });
}

export async function devServerEnv(extraArgs: string[] = []): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: { executable: ephemeralExecutable('cli'), extraArgs },
  });
}
