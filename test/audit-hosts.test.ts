/**
 * The leak audit across roles: the auditCloud workflow asks every registered compute host on its own
 * `compute@<host>` queue (the controller never reads a host's directory), reports what a host finds with
 * that host's name, and reports a registered host whose worker does not answer as unreachable, not clean.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { DEFAULT_HOSTS, registerComputeHost } from '../cloud/hosts';
import type { LeakFinding } from '../workflows/operator-types';
import { openSecurityHarness, type SecurityHarness } from './helpers/security-harness';

/** The task queues the workflow scheduled `auditHost` on, from its history. */
async function auditHostQueues(h: SecurityHarness, workflowId: string): Promise<string[]> {
  const history = await h.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes)
    .filter((a) => a?.activityType?.name === 'auditHost')
    .map((a) => a?.taskQueue?.name ?? '')
    .sort();
}

describe('the leak audit asks each compute host on its queue', () => {
  let h: SecurityHarness;

  before(async () => {
    h = await openSecurityHarness('audit-hosts');
  });
  after(async () => {
    await h?.close();
  });

  async function audit(workflowId: string, extra: Record<string, unknown> = {}): Promise<LeakFinding[]> {
    await h.syncClock();
    return h.run<LeakFinding[]>('audit', { auth: h.adminAuth(), ...extra }, workflowId);
  }

  test('a clean cloud: every registered host is asked on compute@<host>, nothing found', async () => {
    const id = `audit-clean-${randomUUID()}`;
    assert.deepEqual(await audit(id), []);
    assert.deepEqual(
      await auditHostQueues(h, id),
      DEFAULT_HOSTS.map((s) => `compute@${s.host}`),
    );
  });

  test('what a host holds for nobody comes back from that host', async () => {
    const compute2 = h.computeHosts.get('compute2')!;
    const orphan = randomUUID();
    await compute2.createInstanceDir(orphan, { rootGb: 1 });
    try {
      const findings = await audit(`audit-orphan-${randomUUID()}`);
      assert.deepEqual(
        findings.map((f) => [f.kind, f.id, f.host]),
        [['instance-dir', orphan, 'compute2']],
      );
    } finally {
      await compute2.destroy(orphan);
    }
  });

  test('a registered host with no worker is reported unreachable; the others are still audited', async () => {
    await registerComputeHost(h.cloud, { ...DEFAULT_HOSTS[0]!, host: 'compute9' });
    const id = `audit-unreachable-${randomUUID()}`;
    const findings = await audit(id, { hostPickupMs: 2_000 });
    assert.deepEqual(
      findings.map((f) => [f.kind, f.id, f.host]),
      [['host-unreachable', 'compute9', 'compute9']],
    );
    assert.match(
      findings[0]!.detail,
      /compute host compute9 was not audited: no worker picked it up within 2 s/,
    );
    assert.deepEqual(await auditHostQueues(h, id), [
      ...DEFAULT_HOSTS.map((s) => `compute@${s.host}`),
      'compute@compute9',
    ]);
  });
});
