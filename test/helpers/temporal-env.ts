/** Test environments on the resolved Temporal binaries (project virtualenv first, SDK download last). */
import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { ephemeralExecutable } from '../../lib/temporal-binaries';
import { installTemporalRuntime } from '../../lib/logger';

/** `dataConverter` goes to the environment's client; give the same one to Worker.create. */
export async function timeSkippingEnv(
  dataConverter?: DataConverter,
  interceptors?: WorkflowClientInterceptor[],
): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: ephemeralExecutable('test-server') },
    client: {
      ...(dataConverter ? { dataConverter } : {}),
      ...(interceptors ? { interceptors: { workflow: interceptors } } : {}),
    },
  });
}

export async function devServerEnv(
  extraArgs: string[] = [],
  dataConverter?: DataConverter,
  interceptors?: WorkflowClientInterceptor[],
): Promise<TestWorkflowEnvironment> {
  installTemporalRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: { executable: ephemeralExecutable('cli'), extraArgs },
    client: {
      ...(dataConverter ? { dataConverter } : {}),
      ...(interceptors ? { interceptors: { workflow: interceptors } } : {}),
    },
  });
}
