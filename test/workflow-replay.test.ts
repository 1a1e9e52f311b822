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
  // A DELETE right after POST /servers (test/api-compute-boot.test.ts): the build stopped before its record
  // step; the delete goes on once the build's workflow has closed.
  'api-delete-while-building',
  'bad-credentials',
  'boot-ami',
  'boot-from-image',
  'boot-from-volume',
  // A completed boot reset to its first workflow task (test/workflow-reset.test.ts): finds its instance
  // built, fails Conflict and changes nothing (patched: rerun-leaves-built-instance).
  'boot-reset-completed',
  // A reset run onto a finished build (test/workflow-reset.test.ts): releases by instance, ends in ERROR
  // (before reset-leaves-built-instance: see reset-leaves-built/ below).
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

/** The other workflows' stored histories, one directory each under test/histories/, and why they are there. */
const STORED: Array<{ dir: string; what: string; ids: string[] }> = [
  {
    // The first boots recorded with the 'controller-local-steps' patch, before 'reset-stable-instance-uuid'
    // (the instance uuid was a uuid4() and a stopped build cancelled its timer).
    dir: 'local-steps/first',
    what: 'boots with the controller steps as local activities, before the stable uuid',
    ids: [
      'boot-from-image',
      'boot-from-volume',
      'cancelled',
      'max-retries',
      'quota-exceeded',
      'sequential-from-image',
    ],
  },
  {
    // Boots recorded after the 'controller-local-steps' patch (the controller's steps as local activities,
    // one marker each) and 'reset-stable-instance-uuid' (stable uuid, timers kept); the boots at the top of
    // test/histories/ are from before them all and replay without them.
    dir: 'local-steps',
    what: 'boots with the controller steps as local activities',
    ids: [
      'boot-deleted-while-building',
      'boot-from-image',
      'boot-from-volume',
      'cancelled',
      'max-retries',
      'quota-exceeded',
      'sequential-from-image',
    ],
  },
  {
    // `audit-before-hosts` was recorded before the audit asked each compute host on its queue (one
    // runLeakAudit on the controller), `audit` after (auditHost on compute@compute1..3): the change is patched.
    dir: 'operator',
    what: 'the leak audit (before and after the hosts are asked)',
    ids: ['audit-before-hosts', 'audit'],
  },
  { dir: 'console', what: 'the console output (test/workflow-ami.test.ts)', ids: ['console-output'] },
  {
    // test/api-compute-pause-suspend.test.ts: pause, unpause, suspend, resume, and a suspend the host fails.
    dir: 'pause-suspend',
    what: 'pause, unpause, suspend and resume',
    ids: ['pause', 'resume', 'suspend-fails', 'suspend', 'unpause'],
  },
  {
    // test/workflow-power.test.ts: each operation and the failure paths of the server-operation shape.
    dir: 'power',
    what: 'the power actions',
    ids: [
      'reboot-hard',
      'reboot-soft',
      'start-cancelled',
      'start',
      // Recorded after the cancelled operation waits for the host's call to stop (patched in).
      'stop-cancelled',
      'stop-deleted',
      'stop-fails',
      'stop-host-down',
      'stop',
    ],
  },
  {
    // test/workflow-rebuild.test.ts: rebuildInstance (its own workflow type) from another image, and the
    // host's spawn failing (ERROR with the fault).
    dir: 'rebuild',
    what: 'rebuild',
    ids: ['rebuild-spawn-fails', 'rebuild'],
  },
  {
    // test/workflow-snapshot.test.ts: snapshotInstance (createImage) uploading the disk, and the host's
    // snapshot failing (image deleted, task_state back).
    dir: 'snapshot',
    what: 'createImage',
    ids: ['snapshot-fails', 'snapshot'],
  },
  {
    // test/workflow-server-volumes.test.ts: success, each failure path, a cancel, a delete during an attach.
    dir: 'volumes',
    what: 'volume attach and detach on a running server',
    ids: [
      'attach-cancelled',
      'attach-connect-fails',
      'attach-during-delete',
      'attach-host-down',
      'attach',
      'detach-fails',
      'detach',
    ],
  },
  {
    // test/operator-compute-service.test.ts: the first two were recorded before the periodic power-state
    // sync (registration, heartbeats, continue-as-new), `power-sync` after; the sync is patched in.
    // `dhcp-sync` after the DHCP agent's sync was patched in (dhcp-network-sync).
    dir: 'compute-service',
    what: 'compute-service-<host> (before and after the power-state sync, and the DHCP sync)',
    ids: ['dhcp-sync', 'heartbeats-first-run', 'heartbeats-latest-run', 'power-sync'],
  },
  {
    // test/workflow-boot-existing-volume.test.ts: boots from an existing volume (patch
    // boot-from-existing-volume: attached as the root, none created), one ACTIVE, one failing on every host.
    dir: 'existing-volume',
    what: 'boots from an existing volume',
    ids: ['all-hosts-fail', 'boot'],
  },
  {
    // test/workflow-boot-existing-volume.test.ts, after the patch failed-build-deletes-existing-volume: the
    // boot's delete_on_termination volume, which it did not make, deleted by the failed build's undo
    // (existing-volume/all-hosts-fail above: before, given back available).
    dir: 'existing-volume-deleted',
    what: 'a failed boot from an existing delete_on_termination volume',
    ids: ['all-hosts-fail'],
  },
  {
    // test/workflow-boot-existing-volume.test.ts, after the patch delete-reports-kept-volumes: a delete whose
    // delete_on_termination volume has snapshots (deleteServerVolume: kept, in the result's keptVolumes).
    dir: 'delete-kept-volume',
    what: 'a delete that keeps a snapshotted delete_on_termination volume',
    ids: ['delete-snapshotted'],
  },
  {
    // Boots recorded after the 'quota-undo-own-claim' patch: the quota undo registered after the claim and
    // only when it is the boot's own. A refused claim (no undo), a completed boot reset to its first workflow
    // task (its instance keeps its claim; before, a flag skipped the whole saga: boot-reset-completed above),
    // and a reset onto a finished build (released by instance, ERROR; before reset-leaves-built-instance).
    dir: 'quota-own-claim',
    what: 'boots with the quota undo only for their own claim',
    ids: ['boot-reset-completed', 'boot-reset-mid-build', 'quota-exceeded'],
  },
  {
    // A completed boot reset to a workflow task after its record step (test/workflow-reset.test.ts): a
    // guarded step refuses the re-run, which finds the instance built on its host and leaves it ACTIVE
    // (patch reset-leaves-built-instance; before: quota-own-claim/boot-reset-mid-build, ERROR).
    dir: 'reset-leaves-built',
    what: 'a reset run that leaves the instance an earlier run built',
    ids: ['boot-reset-after-record'],
  },
  {
    // A delete of a server booted from a delete_on_termination volume, reset to its first workflow task
    // after its detach (test/workflow-reset.test.ts): the detach and the listing with serverDelete (only
    // activity inputs changed, the same commands: no patch), the reset run deleting the volume.
    dir: 'delete-keeps-volume-flag',
    what: 'a delete reset after its detach, before its volume delete',
    ids: ['delete-reset-after-detach'],
  },
  {
    dir: 'reconciler',
    what: "the reconciler's runs (test/workflow-reconcile.test.ts)",
    ids: ['orphaned-build', 'stale-task'],
  },
  {
    // test/workflow-reconcile.test.ts, after the patch failed-build-deletes-existing-volume: an orphaned
    // boot from an existing delete_on_termination volume, the volume deleted with the release.
    dir: 'reconciler-deletes-volume',
    what: 'the reconciler releasing a boot from an existing delete_on_termination volume',
    ids: ['orphaned-build-existing-volume'],
  },
  {
    // test/workflow-evacuate.test.ts: a server with a volume (evacuate: before the patch
    // evacuate-keeps-old-attachment; evacuate-volume-moved: after), a host-wide run with its children, a
    // spawn failing on the destination, an image fetch failing there after the volume was connected
    // (patched: the connect's undo), a server booted from a volume whose evacuation fails (the dead host's
    // attachment kept), and the returning host's reaping of evacuated guests.
    dir: 'evacuate',
    what: 'evacuate',
    ids: [
      'destroy-evacuated',
      'evacuate-bfv-spawn-fails',
      'evacuate-fetch-fails',
      'evacuate-host',
      'evacuate-spawn-fails',
      'evacuate-volume-moved',
      'evacuate',
    ],
  },
];

for (const { dir, what, ids } of STORED) {
  test(`the stored histories of ${what} replay against the current workflows`, async () => {
    installTemporalRuntime();
    const histories = storedHistories(dir);
    assert.deepEqual(
      histories.map((h) => h.workflowId),
      ids,
    );
    let replayed = 0;
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: await workflowBundle() },
      histories,
    )) {
      assert.equal(result.error, undefined, `${result.workflowId}: ${String(result.error)}`);
      replayed++;
    }
    assert.equal(replayed, ids.length);
  });
}

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
