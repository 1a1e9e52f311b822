/**
 * Replays the histories of the workflow tests' runs (test/histories/*.json, rewritten by running the
 * workflow tests with BOOTFLOW_WRITE_HISTORIES=1) against the current workflow code: a change that is not
 * replay-safe (a step added, removed or reordered without patching) fails here before it reaches a cluster
 * with builds in flight.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { installTemporalRuntime } from '../lib/logger';
import { storedHistories, workflowBundle } from './helpers/boot-harness';

const EXPECTED = [
  'api-boot',
  'bad-credentials',
  'boot-ami',
  'boot-from-image',
  'boot-from-volume',
  // A reset run onto a finished build (test/workflow-reset.test.ts): releases by instance, ends in ERROR.
  'boot-reset-mid-build',
  'cancelled',
  'checksum-mismatch',
  'delete-from-image',
  'delete-while-building',
  'host-down',
  'max-retries',
  'no-valid-host',
  'quota-exceeded',
  'sequential-from-image',
  'sequential-from-volume',
  'subnet-full',
  'token-expires',
  'volume-stuck',
];

test('every stored boot history replays against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories();
  const names = histories.map((h) => h.workflowId);
  for (const name of EXPECTED) assert.ok(names.includes(name), `test/histories/${name}.json is missing`);
  const bundle = await workflowBundle();
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, histories.length);
});

/**
 * The operator workflows' histories (test/histories/operator/): `audit-before-hosts` was recorded before the
 * audit asked each compute host on its queue (one runLeakAudit on the controller), `audit` after (the
 * controller's half, then auditHost on compute@compute1..3); both must replay (the change is patched).
 */
test('the stored audit histories, before and after the hosts are asked, replay against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('operator');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    ['audit-before-hosts', 'audit'],
  );
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../workflows/all') });
  let replayed = 0;
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, 2);
});

/** The console output's history (test/histories/console/, from test/workflow-ami.test.ts). */
test('the stored console-output history replays against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('console');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    ['console-output'],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, 1);
});

/**
 * Attach and detach of a volume on a running server (test/histories/volumes/, from
 * test/workflow-server-volumes.test.ts): success, each failure path, a cancel and a delete during an attach.
 */
/**
 * The power actions' histories (test/histories/power/, from test/workflow-power.test.ts): stop, start,
 * soft and hard reboot, and the failure paths of the server-operation shape (host step failing, host down,
 * cancelled, superseded by a delete).
 */
test('the stored power-action histories replay against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('power');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    [
      'reboot-hard',
      'reboot-soft',
      'start-cancelled',
      'start',
      'stop-deleted',
      'stop-fails',
      'stop-host-down',
      'stop',
    ],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, histories.length);
});

test('the stored volume attach and detach histories replay against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('volumes');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    [
      'attach-cancelled',
      'attach-connect-fails',
      'attach-during-delete',
      'attach-host-down',
      'attach',
      'detach-fails',
      'detach',
    ],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, histories.length);
});

/**
 * compute-service-<host>'s histories (test/histories/compute-service/, from
 * test/operator-compute-service.test.ts): `heartbeats-first-run` (registration, heartbeats, continue-as-new)
 * and `heartbeats-latest-run` were recorded before the periodic power-state sync, `power-sync` after; all
 * must replay (the sync is patched in).
 */
test('the stored compute-service histories, before and after the power-state sync, replay', async () => {
  installTemporalRuntime();
  const histories = storedHistories('compute-service');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    ['heartbeats-first-run', 'heartbeats-latest-run', 'power-sync'],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, 3);
});

/** The reconciler's runs (test/histories/reconciler/, from test/workflow-reconcile.test.ts on a dev server). */
test('the stored reconciler histories replay against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('reconciler');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    ['orphaned-build', 'stale-task'],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, 2);
});

/**
 * Evacuate (test/histories/evacuate/, from test/workflow-evacuate.test.ts): one server, a host-wide run with
 * its children, a spawn failing on the destination, and the returning host's reaping of evacuated guests.
 */
test('the stored evacuate histories replay against the current workflows', async () => {
  installTemporalRuntime();
  const histories = storedHistories('evacuate');
  assert.deepEqual(
    histories.map((h) => h.workflowId),
    ['destroy-evacuated', 'evacuate-host', 'evacuate-spawn-fails', 'evacuate'],
  );
  let replayed = 0;
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: await workflowBundle() },
    histories,
  )) {
    assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
    replayed++;
  }
  assert.equal(replayed, histories.length);
});

test('a workflow change that is not replay-safe fails the replay', async () => {
  installTemporalRuntime();
  const [boot] = storedHistories().filter((h) => h.workflowId === 'boot-from-image');
  assert.ok(boot, 'the boot-from-image history');
  const changed = await bundleWorkflowCode({
    workflowsPath: require.resolve('./fixtures/nondeterministic-boot'),
  });
  await assert.rejects(
    Worker.runReplayHistory({ workflowBundle: changed }, boot.history, boot.workflowId),
    DeterminismViolationError,
  );
});
