/** The workflows a `controller` worker runs (its workflowsPath). Deterministic code only. */
export { createInstance, createInstanceSequential, statusQuery } from './create-instance';
export { deleteInstance } from './delete-instance';
