/**
 * AMI-style images and the console log through the workflows (time-skipping test server, real activities,
 * fake virt driver): a boot of an `ami` whose kernel_id/ramdisk_id name an `aki` and an `ari` fetches all
 * three into the host's cache and defines the domain with that kernel and initrd; getConsoleOutput asks the
 * server's host for its console (the fake driver's lines, tailed), refuses another project's server as
 * NotFound and a server without a host as InstanceNotReady. The histories are kept for the replay test.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { bootstrapCloud, GUEST_IMAGE_NAME } from '../cloud/bootstrap';
import { FAKE_CONSOLE_OUTPUT } from '../cloud/compute';
import type { ConsoleOutput, ConsoleOutputRequest } from '../workflows/console-output';
import { CONTROLLER_QUEUE } from '../workflows/names';
import { openBootHarness, type BootHarness } from './helpers/boot-harness';
import { activitySummaries, assertActive } from './helpers/boot-assertions';

describe('AMI boots and the console log', () => {
  let harness: BootHarness;
  let files: string;
  let kernelId: string;
  let ramdiskId: string;
  let amiId: string;

  before(async () => {
    harness = await openBootHarness('workflow-ami');
    files = mkdtempSync(path.join(os.tmpdir(), 'bootflow-ami-'));
    const file = (name: string, bytes: number) => {
      const p = path.join(files, name);
      writeFileSync(p, Buffer.alloc(bytes, name));
      return p;
    };
    const result = await bootstrapCloud(harness.cloud, {
      hosts: [],
      guestImage: {
        build: 'test-build',
        kernelPath: file('vmlinuz', 4096),
        ramdiskPath: file('initrd', 8192),
        diskPath: file('disk', 65536),
      },
    });
    assert.ok(result.guestImageId);
    amiId = result.guestImageId;
    const ctx = { projectId: result.admin.projectId, roles: ['admin'] };
    const ami = await harness.cloud.glance.getImage(amiId, ctx);
    assert.equal(ami.name, GUEST_IMAGE_NAME);
    kernelId = ami.properties.kernel_id ?? '';
    ramdiskId = ami.properties.ramdisk_id ?? '';
    assert.equal((await harness.cloud.glance.getImage(kernelId, ctx)).diskFormat, 'aki');
    assert.equal((await harness.cloud.glance.getImage(ramdiskId, ctx)).diskFormat, 'ari');
  });

  after(async () => {
    await harness?.close();
    if (files) rmSync(files, { recursive: true, force: true });
  });

  function consoleOutput(request: ConsoleOutputRequest, id: string): Promise<WorkflowHandle> {
    return harness.env.client.workflow.start('getConsoleOutput', {
      taskQueue: CONTROLLER_QUEUE,
      workflowId: id,
      args: [request],
    });
  }

  test('an AMI boot fetches its kernel and ramdisk beside it and defines the domain with them', async () => {
    const handle = await harness.startBoot(harness.request('ami-1', { image: amiId }));
    const result = await handle.result();
    await assertActive(harness, result);
    const host = harness.computeHosts.get(result.host);
    assert.ok(host);
    const cached = (await host.listCachedImages()).map((i) => i.imageId);
    for (const id of [amiId, kernelId, ramdiskId]) assert.ok(cached.includes(id), `${id} in _base`);
    const xml = await host.readDomainDefinition(result.id);
    assert.match(xml, new RegExp(`<kernel>.*_base/${kernelId}</kernel>`));
    assert.match(xml, new RegExp(`<initrd>.*_base/${ramdiskId}</initrd>`));
    assert.match(xml, new RegExp(`<cmdline>console=ttyS0 .*bootflow.uuid=${result.id}</cmdline>`));
    const summaries = await activitySummaries(handle);
    for (const what of ['image', 'kernel image', 'ramdisk image'])
      assert.ok(
        summaries.includes(`glance: fetch ${what} to ${result.host}`),
        `fetch ${what}: ${summaries.join(', ')}`,
      );
    await harness.keepHistory('boot-ami', handle);

    const asked = await consoleOutput(
      { auth: harness.demoAuth(), server: result.name, lines: 3 },
      'console-output',
    );
    const answer = (await asked.result()) as ConsoleOutput;
    assert.deepEqual(answer, { output: 'ANOTHER\nLAST LINE\n', instanceUuid: result.id, host: result.host });
    const whole = (await (
      await consoleOutput({ auth: harness.demoAuth(), server: result.id }, 'console-output-all')
    ).result()) as ConsoleOutput;
    assert.equal(whole.output, FAKE_CONSOLE_OUTPUT);
    await harness.keepHistory('console/console-output', asked);
  });

  test("another project's server is NotFound; a server without a host is InstanceNotReady", async () => {
    const admin = harness.boot.admin;
    const adminAuth = {
      credentials: { username: admin.username, password: admin.password, projectName: admin.projectName },
    };
    const built = await harness.runBoot(harness.request('ami-2', { image: amiId }));
    // The admin project's member asking by name does not see the demo project's server.
    await assert.rejects(
      (await consoleOutput({ auth: adminAuth, server: built.name }, 'console-output-other')).result(),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        (err.cause?.cause as ApplicationFailure | undefined)?.type === 'NotFound',
    );
    // A server nova-api recorded but the scheduler has not placed yet.
    const record = await harness.cloud.nova.createInstance({
      uuid: randomUUID(),
      requestId: 'console-no-host',
      name: 'no-host',
      projectId: harness.boot.demo.projectId,
      userId: (await harness.cloud.nova.getInstance(built.id)).userId,
      flavor: 'm1.tiny',
      imageRef: amiId,
      networks: [harness.boot.privateNetworkId],
    });
    await assert.rejects(
      (
        await consoleOutput({ auth: harness.demoAuth(), server: record.uuid }, 'console-output-no-host')
      ).result(),
      (err: unknown) =>
        err instanceof WorkflowFailedError &&
        (err.cause?.cause as ApplicationFailure | undefined)?.type === 'InstanceNotReady',
    );
  });
});
