/**
 * stopInstance, startInstance and rebootInstance on the time-skipping test server with the real activities
 * and the fake driver: each operation's success (vm_state, power_state read back from the driver, the
 * instance action and its event), the host step failing (typed failure, task_state reset, fault, event
 * Error), the host down mid-operation, a second operation while one runs (Conflict, as the API's 409), a
 * cancelled operation, and a delete during an operation (the delete wins, the audit is empty).
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CancelledFailure, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FaultOperation } from '../cloud/compute';
import { POWER_STATES, type OperationName } from '../cloud/nova';
import { pollUntil } from '../lib/poll';
import { CONTROLLER_QUEUE, deleteWorkflowId, serverOperationWorkflowId } from '../workflows/names';
import type { BootResult, DeleteResult, ServerOperationResult } from '../workflows/types';
import { activityAttempts, assertNoLeaks } from './helpers/boot-assertions';
import { HOSTS, openBootHarness, type BootHarness } from './helpers/boot-harness';

type PowerWorkflow = 'stopInstance' | 'startInstance' | 'rebootInstance';

const OPERATION_OF: Record<string, OperationName> = {
  stopInstance: 'stop',
  startInstance: 'start',
  SOFT: 'reboot-soft',
  HARD: 'reboot-hard',
};

describe('power actions (stop, start, reboot) as workflows', () => {
  let h: BootHarness;
  let seq = 0;
  before(async () => {
    h = await openBootHarness('wf-power');
  });
  after(async () => {
    await h?.close();
  });
  afterEach(async () => {
    for (const compute of h.computeHosts.values()) await compute.clearFaults();
    await h.setRunningHosts(HOSTS);
  });

  async function boot(): Promise<BootResult> {
    return h.runBoot(h.request(`power-boot-${++seq}`));
  }

  /**
   * Starts an operation's workflow. `viaApi`: nova-api's begin first, as the servers API does before it
   * starts the workflow (which then finds the action); otherwise the workflow begins it (the client's path).
   */
  async function startOp(
    workflow: PowerWorkflow,
    server: string,
    options: { requestId?: string; type?: 'SOFT' | 'HARD'; viaApi?: boolean; hostPickupMs?: number } = {},
  ): Promise<WorkflowHandle> {
    const requestId = options.requestId ?? `req-${workflow}-${++seq}`;
    const operation = OPERATION_OF[options.type ?? workflow] as OperationName;
    await h.syncClock();
    if (options.viaApi) {
      const instance = await h.cloud.nova.getInstance(server);
      await h.cloud.nova.beginOperation({
        instanceUuid: server,
        requestId,
        operation,
        userId: instance.userId,
        projectId: instance.projectId,
      });
    }
    return h.env.client.workflow.start(workflow, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: serverOperationWorkflowId(operation, server, requestId),
      args: [
        {
          requestId,
          // As the servers API and the client hand it over: a token, never a password.
          auth: { token: await demoToken() },
          instanceUuid: server,
          ...(options.type ? { type: options.type } : {}),
          ...(options.hostPickupMs ? { timeouts: { hostPickupMs: options.hostPickupMs } } : {}),
        },
      ],
    });
  }

  /** A token minted at the cloud's current time (the test server skips hours while workflows wait). */
  async function demoToken(): Promise<string> {
    await h.syncClock();
    const { username, password, projectName } = h.boot.demo;
    return (await h.cloud.keystone.authenticate({ username, password, projectName })).token;
  }

  async function expectFailure(handle: WorkflowHandle, type: string): Promise<ApplicationFailure> {
    const err = await handle.result().then(
      () => assert.fail('expected the operation to fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    assert.ok(err.cause instanceof ApplicationFailure, String(err.cause));
    assert.equal(err.cause.type, type, err.cause.message);
    return err.cause;
  }

  async function actionOf(server: string, requestId: string) {
    const action = (await h.cloud.nova.listActions(server)).find((a) => a.requestId === requestId);
    assert.ok(action, `the instance action of ${requestId}`);
    return action;
  }

  async function driverPower(server: BootResult): Promise<number> {
    return h.computeHosts.get(server.host)!.getPowerState(server.id);
  }

  function waitForHold(host: string, operation: FaultOperation): Promise<true> {
    const compute = h.computeHosts.get(host)!;
    return pollUntil(
      async () => (((await compute.listFaults())[operation]?.hits ?? 0) >= 1 ? true : undefined),
      { timeoutMs: 30_000, intervalMs: 20, what: `a call held by the ${operation} fault on ${host}` },
    );
  }

  async function deleteServer(server: string): Promise<DeleteResult> {
    await h.syncClock();
    const handle = await h.env.client.workflow.start('deleteInstance', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: deleteWorkflowId(server),
      args: [{ requestId: `del-${server}`, auth: { token: await demoToken() }, instanceUuid: server }],
    });
    return (await handle.result()) as DeleteResult;
  }

  test('stop, start, soft and hard reboot: states, power read back from the driver, actions and events', async () => {
    const server = await boot();
    const stop = await startOp('stopInstance', server.id, { viaApi: true });
    const stopped = (await stop.result()) as ServerOperationResult;
    await h.keepHistory('power/stop', stop);
    assert.equal(stopped.vmState, 'stopped');
    assert.equal(stopped.powerState, POWER_STATES.SHUTDOWN);
    assert.equal(await driverPower(server), POWER_STATES.SHUTDOWN);
    let instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState, instance.powerState], ['stopped', null, 4]);
    assert.equal(h.cloud.nova.apiStatus(instance), 'SHUTOFF');

    const start = await startOp('startInstance', server.id);
    const started = (await start.result()) as ServerOperationResult;
    await h.keepHistory('power/start', start);
    assert.deepEqual([started.vmState, started.powerState], ['active', POWER_STATES.RUNNING]);
    assert.equal(await driverPower(server), POWER_STATES.RUNNING);

    for (const type of ['SOFT', 'HARD'] as const) {
      const reboot = await startOp('rebootInstance', server.id, { type, viaApi: type === 'HARD' });
      const rebooted = (await reboot.result()) as ServerOperationResult;
      await h.keepHistory(`power/reboot-${type.toLowerCase()}`, reboot);
      assert.deepEqual([rebooted.vmState, rebooted.powerState], ['active', POWER_STATES.RUNNING]);
    }
    instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);

    const actions = await h.cloud.nova.listActions(server.id);
    assert.deepEqual(
      actions.map((a) => [a.action, a.message, a.finishTime !== null]),
      [
        ['create', null, true],
        ['stop', null, true],
        ['start', null, true],
        ['reboot', null, true],
        ['reboot', null, true],
      ],
    );
    assert.deepEqual(
      actions.slice(1).map((a) => a.events.map((e) => [e.event, e.host, e.result])),
      [
        [['compute_stop_instance', server.host, 'Success']],
        [['compute_start_instance', server.host, 'Success']],
        [['compute_reboot_instance', server.host, 'Success']],
        [['compute_reboot_instance', server.host, 'Success']],
      ],
    );
    assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('the host step failing: typed failure after its retries, task_state back, fault kept, event Error', async () => {
    const server = await boot();
    await h.computeHosts.get(server.host)!.setFault('powerOff', {
      mode: 'fail',
      errorType: 'ServiceUnavailable',
      message: 'Injected: libvirt could not power the domain off',
    });
    const requestId = 'req-stop-fails';
    const handle = await startOp('stopInstance', server.id, { requestId, viaApi: true });
    const failure = await expectFailure(handle, 'ServiceUnavailable');
    await h.keepHistory('power/stop-fails', handle);
    assert.match(failure.message, /could not power the domain off/);
    // The history keeps the last attempt's start: the third, after two retries.
    const attempts = (await activityAttempts(handle)).filter((a) => a.type === 'powerOff');
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [3],
    );
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState, instance.powerState], ['active', null, 1]);
    assert.equal(await driverPower(server), POWER_STATES.RUNNING);
    const [fault] = await h.cloud.nova.listFaults(server.id);
    assert.match(fault?.message ?? '', /could not power the domain off/);
    assert.equal(fault?.code, 503);
    const action = await actionOf(server.id, requestId);
    assert.equal(action.message, 'Error');
    assert.notEqual(action.finishTime, null);
    assert.deepEqual(
      action.events.map((e) => [e.event, e.host, e.result]),
      [['compute_stop_instance', server.host, 'Error']],
    );
    assert.match(action.events[0]?.details ?? '', /^ServiceUnavailable: /);
    // The server is usable again: a second stop goes through.
    await h.computeHosts.get(server.host)!.clearFaults();
    await (await startOp('stopInstance', server.id)).result();
    assert.equal((await h.cloud.nova.getInstance(server.id)).vmState, 'stopped');
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test("a hard reboot that leaves the guest off puts the server in ERROR (Nova's reboot failure)", async () => {
    const server = await boot();
    await (await startOp('stopInstance', server.id)).result();
    await h.computeHosts.get(server.host)!.setFault('reboot', {
      mode: 'fail',
      errorType: 'BadRequest',
      message: 'Injected: the guest cannot be reset',
    });
    const handle = await startOp('rebootInstance', server.id, { type: 'HARD' });
    await expectFailure(handle, 'BadRequest');
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState, instance.powerState], ['error', null, 4]);
    assert.match((await h.cloud.nova.listFaults(server.id))[0]?.message ?? '', /cannot be reset/);
    // A soft reboot is not allowed from ERROR; a hard one is, and brings it back.
    await h.computeHosts.get(server.host)!.clearFaults();
    const soft = await startOp('rebootInstance', server.id, { type: 'SOFT' });
    const refused = await expectFailure(soft, 'InstanceInvalidState');
    assert.equal(refused.message, `Cannot 'reboot' instance ${server.id} while it is in vm_state error`);
    const hard = (await (
      await startOp('rebootInstance', server.id, { type: 'HARD' })
    ).result()) as ServerOperationResult;
    assert.deepEqual([hard.vmState, hard.powerState], ['active', POWER_STATES.RUNNING]);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('the host down when the operation reaches it: never picked up, the stop fails, state back', async () => {
    const server = await boot();
    // nova-compute on the server's host is gone: nothing polls compute@<host>.
    await h.setRunningHosts(HOSTS.filter((host) => host !== server.host));
    const requestId = 'req-stop-host-down';
    const handle = await startOp('stopInstance', server.id, { requestId, hostPickupMs: 5000 });
    const failure = await expectFailure(handle, 'ServiceUnavailable');
    await h.keepHistory('power/stop-host-down', handle);
    assert.match(failure.message, /did not pick up powerOff .* the host is down/);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    const action = await actionOf(server.id, requestId);
    assert.deepEqual(
      action.events.map((e) => [e.event, e.result]),
      [['compute_stop_instance', 'Error']],
    );
    assert.match((await h.cloud.nova.listFaults(server.id))[0]?.message ?? '', /the host is down/);
    await h.setRunningHosts(HOSTS);
    // The guest never stopped: the driver still has it running, as the server says.
    assert.equal(await driverPower(server), POWER_STATES.RUNNING);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('a second operation while one runs is refused (409 Conflict) and leaves the first undisturbed', async () => {
    const server = await boot();
    await h.computeHosts.get(server.host)!.setFault('powerOff', { mode: 'hang' });
    const first = await startOp('stopInstance', server.id, { viaApi: true });
    await waitForHold(server.host, 'powerOff');
    // nova-api's synchronous check (what the servers API answers 409 with) ...
    const instance = await h.cloud.nova.getInstance(server.id);
    await assert.rejects(
      h.cloud.nova.beginOperation({
        instanceUuid: server.id,
        requestId: 'req-second-stop',
        operation: 'stop',
        userId: instance.userId,
        projectId: instance.projectId,
      }),
      (err: Error) =>
        err.message === `Cannot 'stop' instance ${server.id} while it is in task_state powering-off`,
    );
    // ... and the same refusal for a workflow started without it (the client's path).
    const requestId = 'req-second-reboot';
    const second = await startOp('rebootInstance', server.id, { type: 'SOFT', requestId });
    const refused = await expectFailure(second, 'InstanceInvalidState');
    assert.equal(
      refused.message,
      `Cannot 'reboot' instance ${server.id} while it is in task_state powering-off`,
    );
    assert.equal((await h.cloud.nova.getInstance(server.id)).taskState, 'powering-off');
    assert.equal(
      (await h.cloud.nova.listActions(server.id)).some((a) => a.requestId === requestId),
      false,
    );
    await h.computeHosts.get(server.host)!.clearFaults();
    const stopped = (await first.result()) as ServerOperationResult;
    assert.equal(stopped.vmState, 'stopped');
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('a cancelled start: task_state back to None, still stopped, no fault', async () => {
    const server = await boot();
    await (await startOp('stopInstance', server.id)).result();
    await h.computeHosts.get(server.host)!.setFault('powerOn', { mode: 'hang' });
    const requestId = 'req-start-cancelled';
    const handle = await startOp('startInstance', server.id, { requestId });
    await waitForHold(server.host, 'powerOn');
    await handle.cancel();
    const err = await handle.result().then(
      () => assert.fail('expected a cancellation'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
    await h.keepHistory('power/start-cancelled', handle);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['stopped', null]);
    assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
    const action = await actionOf(server.id, requestId);
    assert.deepEqual([action.message, action.events.map((e) => e.result)], ['Error', ['Error']]);
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });

  test('a delete during a stop wins: the stop stops at its next step, the delete completes, nothing leaks', async () => {
    const server = await boot();
    await h.computeHosts.get(server.host)!.setFault('powerOff', { mode: 'hang' });
    const requestId = 'req-stop-then-delete';
    const stop = await startOp('stopInstance', server.id, { requestId, viaApi: true });
    await waitForHold(server.host, 'powerOff');
    const deleted = await deleteServer(server.id);
    assert.equal(deleted.outcome, 'deleted');
    await h.computeHosts.get(server.host)!.clearFaults();
    const failure = await expectFailure(stop, 'Conflict');
    await h.keepHistory('power/stop-deleted', stop);
    assert.equal(failure.message, `The stop of instance ${server.id} stopped: the server was deleted`);
    const instance = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
    assert.deepEqual([instance.vmState, instance.deleted, instance.taskState], ['deleted', true, null]);
    assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
    const action = await actionOf(server.id, requestId);
    assert.equal(action.message, 'Error');
    assert.deepEqual(
      (await h.cloud.nova.listActions(server.id)).map((a) => [a.action, a.finishTime !== null]),
      [
        ['create', true],
        ['stop', true],
        ['delete', true],
      ],
    );
    assert.equal(await h.computeHosts.get(server.host)!.getDomain(server.id), undefined);
    await assertNoLeaks(h);
  });

  /** Each power action, with the fault operation on the host, the state it starts from and ends in. */
  const ACTIONS = [
    { name: 'stop', workflow: 'stopInstance', fault: 'powerOff', from: 'active', done: 'stopped' },
    { name: 'start', workflow: 'startInstance', fault: 'powerOn', from: 'stopped', done: 'active' },
    {
      name: 'reboot SOFT',
      workflow: 'rebootInstance',
      type: 'SOFT',
      fault: 'reboot',
      from: 'active',
      done: 'active',
    },
    {
      name: 'reboot HARD',
      workflow: 'rebootInstance',
      type: 'HARD',
      fault: 'reboot',
      from: 'active',
      done: 'active',
    },
  ] as const satisfies ReadonlyArray<{
    name: string;
    workflow: PowerWorkflow;
    type?: 'SOFT' | 'HARD';
    fault: FaultOperation;
    from: 'active' | 'stopped';
    done: 'active' | 'stopped';
  }>;
  type Action = (typeof ACTIONS)[number];
  const POWER_OF = { active: POWER_STATES.RUNNING, stopped: POWER_STATES.SHUTDOWN } as const;

  /** A server in the action's starting state, and the action started on it (held on its host if `hold`). */
  async function serverFor(action: Action): Promise<BootResult> {
    const server = await boot();
    if (action.from === 'stopped') await (await startOp('stopInstance', server.id)).result();
    return server;
  }
  function startAction(action: Action, server: string, requestId: string): Promise<WorkflowHandle> {
    return startOp(action.workflow, server, {
      requestId,
      viaApi: true,
      hostPickupMs: 5000,
      ...('type' in action ? { type: action.type } : {}),
    });
  }

  /** The server as it was before the action, no task, its DB power state the driver's, the action Error. */
  async function assertUnchanged(action: Action, server: BootResult, requestId: string): Promise<void> {
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual(
      [instance.vmState, instance.taskState, instance.powerState],
      [action.from, null, POWER_OF[action.from]],
    );
    assert.equal(await driverPower(server), POWER_OF[action.from]);
    const record = await actionOf(server.id, requestId);
    assert.equal(record.message, 'Error');
    assert.notEqual(record.finishTime, null);
    assert.deepEqual(
      record.events.map((e) => [e.host, e.result, e.finishTime !== null]),
      [[server.host, 'Error', true]],
    );
  }

  for (const action of ACTIONS) {
    test(`${action.name} failing on the host: typed failure, state back, fault kept, event Error`, async () => {
      const server = await serverFor(action);
      await h.computeHosts.get(server.host)!.setFault(action.fault, {
        mode: 'fail',
        errorType: 'ServiceUnavailable',
        message: `Injected: ${action.fault} failed`,
      });
      const requestId = `req-${action.fault}-fails-${++seq}`;
      const failure = await expectFailure(
        await startAction(action, server.id, requestId),
        'ServiceUnavailable',
      );
      assert.match(failure.message, new RegExp(`${action.fault} failed`));
      // The guest is as it was (the fault fires before the driver acts), so even a reboot stays ACTIVE.
      await assertUnchanged(action, server, requestId);
      assert.match((await h.cloud.nova.listFaults(server.id))[0]?.message ?? '', /failed/);
      await deleteServer(server.id);
      await assertNoLeaks(h);
    });

    test(`${action.name} with the host down past its begin: the host's call times out, fault, state back`, async () => {
      const server = await serverFor(action);
      // nova-compute on the server's host is gone: the host step's call is never picked up.
      await h.setRunningHosts(HOSTS.filter((host) => host !== server.host));
      const requestId = `req-${action.fault}-host-down-${++seq}`;
      const failure = await expectFailure(
        await startAction(action, server.id, requestId),
        'ServiceUnavailable',
      );
      assert.match(failure.message, new RegExp(`did not pick up ${action.fault} .* the host is down`));
      await h.setRunningHosts(HOSTS);
      await assertUnchanged(action, server, requestId);
      assert.match((await h.cloud.nova.listFaults(server.id))[0]?.message ?? '', /the host is down/);
      await deleteServer(server.id);
      await assertNoLeaks(h);
    });

    test(`${action.name} cancelled while the host holds it: nothing done, no task, no fault, event Error`, async () => {
      const server = await serverFor(action);
      const compute = h.computeHosts.get(server.host)!;
      await compute.setFault(action.fault, { mode: 'hang' });
      const requestId = `req-${action.fault}-cancelled-${++seq}`;
      const handle = await startAction(action, server.id, requestId);
      await waitForHold(server.host, action.fault);
      await handle.cancel();
      const err = await handle.result().then(
        () => assert.fail('expected a cancellation'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
      if (action.name === 'stop') await h.keepHistory('power/stop-cancelled', handle);
      // The held call is released at once: it must have stopped, not go on to act on the guest.
      await compute.clearFaults();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await assertUnchanged(action, server, requestId);
      assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
      await deleteServer(server.id);
      await assertNoLeaks(h);
    });

    test(`a delete during ${action.name} wins: the action ends superseded, nothing leaks`, async () => {
      const server = await serverFor(action);
      const compute = h.computeHosts.get(server.host)!;
      await compute.setFault(action.fault, { mode: 'hang' });
      const requestId = `req-${action.fault}-deleted-${++seq}`;
      const handle = await startAction(action, server.id, requestId);
      await waitForHold(server.host, action.fault);
      assert.equal((await deleteServer(server.id)).outcome, 'deleted');
      await compute.clearFaults();
      const failure = await expectFailure(handle, 'Conflict');
      assert.match(failure.message, /stopped: the server was deleted$/);
      const instance = await h.cloud.nova.getInstance(server.id, { includeDeleted: true });
      assert.deepEqual([instance.vmState, instance.deleted, instance.taskState], ['deleted', true, null]);
      assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
      assert.equal((await actionOf(server.id, requestId)).message, 'Error');
      assert.equal(await compute.getDomain(server.id), undefined);
      await assertNoLeaks(h);
    });
  }

  /**
   * check_instance_state refusing an action by the server's vm_state (compute/api.py: start needs STOPPED,
   * stop ACTIVE or ERROR, a soft reboot ACTIVE): 409 with Nova's wording, from nova-api and from the
   * workflow alike, and nothing changed (no task, no action, no fault, the guest as it was).
   */
  const REFUSED_BY_STATE = [
    { name: 'start of an ACTIVE server', workflow: 'startInstance', from: 'active', api: 'start' },
    { name: 'stop of a STOPPED server', workflow: 'stopInstance', from: 'stopped', api: 'stop' },
    {
      name: 'soft reboot of a STOPPED server',
      workflow: 'rebootInstance',
      type: 'SOFT',
      from: 'stopped',
      api: 'reboot',
    },
  ] as const satisfies ReadonlyArray<{
    name: string;
    workflow: PowerWorkflow;
    type?: 'SOFT';
    from: 'active' | 'stopped';
    api: string;
  }>;

  for (const refusal of REFUSED_BY_STATE) {
    test(`${refusal.name} is refused by its vm_state (409 InstanceInvalidState), nothing changed`, async () => {
      const server = await boot();
      if (refusal.from === 'stopped') await (await startOp('stopInstance', server.id)).result();
      const expected = `Cannot '${refusal.api}' instance ${server.id} while it is in vm_state ${refusal.from}`;
      const actionsBefore = await h.cloud.nova.listActions(server.id);
      const instance = await h.cloud.nova.getInstance(server.id);
      // nova-api's synchronous check, what the servers API answers 409 with ...
      await assert.rejects(
        h.cloud.nova.beginOperation({
          instanceUuid: server.id,
          requestId: `req-refused-api-${++seq}`,
          operation: OPERATION_OF['type' in refusal ? refusal.type : refusal.workflow] as OperationName,
          userId: instance.userId,
          projectId: instance.projectId,
        }),
        (err: Error) => err.message === expected,
      );
      // ... and the same refusal for a workflow started without it (the client's path).
      const handle = await startOp(refusal.workflow, server.id, {
        ...('type' in refusal ? { type: refusal.type } : {}),
      });
      const failure = await expectFailure(handle, 'InstanceInvalidState');
      assert.equal(failure.message, expected);
      const after = await h.cloud.nova.getInstance(server.id);
      assert.deepEqual(
        [after.vmState, after.taskState, after.powerState],
        [refusal.from, null, POWER_OF[refusal.from]],
      );
      assert.equal(await driverPower(server), POWER_OF[refusal.from]);
      assert.deepEqual(
        (await h.cloud.nova.listActions(server.id)).map((a) => a.requestId),
        actionsBefore.map((a) => a.requestId),
      );
      assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
      await deleteServer(server.id);
      await assertNoLeaks(h);
    });
  }

  test('a HARD reboot takes over a SOFT one in flight (task_states.ALLOW_REBOOT): the soft one ends superseded', async () => {
    const server = await boot();
    const compute = h.computeHosts.get(server.host)!;
    await compute.setFault('reboot', { mode: 'hang' });
    const softId = 'req-soft-overtaken';
    const soft = await startOp('rebootInstance', server.id, { type: 'SOFT', requestId: softId });
    await waitForHold(server.host, 'reboot');
    const hard = await startOp('rebootInstance', server.id, { type: 'HARD', viaApi: true });
    assert.equal((await h.cloud.nova.getInstance(server.id)).taskState, 'rebooting_hard');
    await compute.clearFaults();
    const failure = await expectFailure(soft, 'Conflict');
    // Its guarded write met rebooting_hard; by the time it records that, the hard one may be done (None).
    assert.match(
      failure.message,
      /reboot-soft of instance .* stopped: its task_state is now (rebooting_hard|None)$/,
    );
    const done = (await hard.result()) as ServerOperationResult;
    assert.deepEqual([done.vmState, done.powerState], ['active', POWER_STATES.RUNNING]);
    const instance = await h.cloud.nova.getInstance(server.id);
    assert.deepEqual([instance.vmState, instance.taskState], ['active', null]);
    assert.equal((await h.cloud.nova.listFaults(server.id)).length, 0);
    assert.equal((await actionOf(server.id, softId)).message, 'Error');
    await deleteServer(server.id);
    await assertNoLeaks(h);
  });
});
