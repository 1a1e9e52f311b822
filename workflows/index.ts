/**
 * The boot, delete, console-output, power (stop, start, reboot), pause and suspend workflows (the client and the OpenStack API start them; a
 * `controller` worker runs them with the rest of ./all.ts). Deterministic code only.
 */
export { createInstance, createInstanceSequential, statusQuery } from './create-instance';
export { deleteInstance } from './delete-instance';
export { getConsoleOutput } from './console-output';
export { attachServerVolume, detachServerVolume } from './server-volumes';
export { destroyEvacuatedInstances, evacuateHost, evacuateServer } from './evacuate';
export { rebootInstance, startInstance, stopInstance } from './power';
export { pauseInstance, resumeInstance, suspendInstance, unpauseInstance } from './pause-suspend';
export { rebuildInstance } from './rebuild';
export { snapshotInstance } from './snapshot';
export { operationPhaseQuery } from './server-operation';
