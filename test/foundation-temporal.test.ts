import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolveTemporalBinary } from '../lib/temporal-binaries';
import { ensureSearchAttributes } from '../lib/search-attributes';
import * as activities from './fixtures/foundation-activities';
import { sleepThenGreet } from './fixtures/foundation-workflows';
import { devServerEnv, timeSkippingEnv } from './helpers/temporal-env';
import { createLogger, installTemporalRuntime } from '../lib/logger';
import { Writable } from 'node:stream';

// Everything Temporal logs in this process goes to pino, captured here so the fields can be checked.
const logLines: Array<Record<string, unknown>> = [];
installTemporalRuntime(
  createLogger({
    env: { LOG_LEVEL: 'info' },
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line));
        done();
      },
    }),
  }),
);

const workflowsPath = require.resolve('./fixtures/foundation-workflows');
const ONE_DAY_MS = 24 * 60 * 60 * 1000;

async function runSleepy(env: TestWorkflowEnvironment, taskQueue: string, sleepFor: string) {
  const worker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue,
    workflowsPath,
    activities,
  });
  return worker.runUntil(
    env.client.workflow.execute(sleepThenGreet, {
      taskQueue,
      workflowId: `foundation-${taskQueue}-${Date.now()}`,
      args: ['bootflow', sleepFor],
    }),
  );
}

describe('time-skipping test server', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await timeSkippingEnv();
  });
  after(async () => {
    await env?.teardown();
  });

  test('a one-day sleep completes because the server skips the time', async () => {
    const startedAt = await env.currentTimeMs();
    const result = await runSleepy(env, 'foundation-skip', '1 day');
    assert.equal(result.greeting, 'Hello, bootflow!');
    // Workflow time moved a full day while the test ran: the timer was skipped, not waited for.
    assert.ok(result.sleptMs >= ONE_DAY_MS, `workflow time advanced only ${result.sleptMs} ms`);
    assert.ok((await env.currentTimeMs()) - startedAt >= ONE_DAY_MS);
  });

  test('activity and workflow logs reach pino with the workflow id, activity type and attempt', () => {
    const activityLine = logLines.find((l) => l.msg === 'greeting');
    assert.ok(activityLine, 'activity log line missing');
    assert.match(String(activityLine.workflowId), /^foundation-foundation-skip-/);
    assert.equal(activityLine.activityType, 'greet');
    assert.equal(activityLine.attempt, 1);
    const workflowLine = logLines.find((l) => l.msg === 'sleeping before the greeting');
    assert.ok(workflowLine, 'workflow log line missing');
    assert.equal(workflowLine.workflowType, 'sleepThenGreet');
    assert.equal(workflowLine.sleepFor, '1 day');
  });
});

describe('dev server (temporal CLI)', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    env = await devServerEnv();
  });
  after(async () => {
    await env?.teardown();
  });

  test('runs against the resolved temporal binary', async () => {
    const resolved = resolveTemporalBinary('cli');
    if (resolved.source !== 'download') {
      // The bundled server of temporal CLI 1.9.x reports a 1.x server version.
      const info = await env.client.workflowService.getSystemInfo({});
      assert.match(info.serverVersion ?? '', /^1\.\d+\.\d+/);
    }
    const result = await runSleepy(env, 'foundation-dev', '1 second');
    assert.equal(result.greeting, 'Hello, bootflow!');
    const handle = env.client.workflow.list({ query: `WorkflowType = 'sleepThenGreet'` });
    let completed = 0;
    for await (const execution of handle) if (execution.status.name === 'COMPLETED') completed++;
    assert.ok(completed >= 1);
  });

  test('the boot search attributes are registered once when missing', async () => {
    const namespace = env.namespace ?? 'default';
    assert.deepEqual(await ensureSearchAttributes(env.connection, namespace), [
      'InstanceId',
      'ProjectId',
      'ComputeHost',
      'VmState',
    ]);
    const listed = await env.connection.operatorService.listSearchAttributes({ namespace });
    assert.ok(
      ['InstanceId', 'ProjectId', 'ComputeHost', 'VmState'].every(
        (n) => n in (listed.customAttributes ?? {}),
      ),
    );
    assert.deepEqual(await ensureSearchAttributes(env.connection, namespace), []);
  });
});
