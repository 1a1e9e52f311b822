import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import {
  AesGcmPayloadCodec,
  Keyring,
  encryptingDataConverter,
  verifyKeyringAgainstHistory,
} from '../lib/codec';
import * as activities from './fixtures/foundation-activities';
import { sleepThenGreet } from './fixtures/foundation-workflows';
import { timeSkippingEnv } from './helpers/temporal-env';
import { pollUntil } from '../lib/poll';

const workflowsPath = require.resolve('./fixtures/foundation-workflows');
const keyring = new Keyring([{ id: 'codec-test-k1', key: randomBytes(32) }]);
const dataConverter = encryptingDataConverter(keyring);

// Distinctive strings that would be found in the stored history if anything went through unencrypted.
const NAME = `user-pw-${randomBytes(6).toString('hex')}`;
const FAILING_NAME = `token-${randomBytes(6).toString('hex')}`;

async function rawHistoryBytes(client: Client, workflowId: string): Promise<Buffer> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return Buffer.from(temporal.api.history.v1.History.encode(history).finish());
}

describe('a workflow run through the encryption codec (time-skipping server)', () => {
  let env: TestWorkflowEnvironment;
  let rawClient: Client;
  let worker: Worker;
  let workerDone: Promise<void>;
  const okId = `codec-ok-${Date.now()}`;
  const failId = `codec-fail-${Date.now()}`;

  before(async () => {
    env = await timeSkippingEnv(dataConverter);
    // Reads the server's histories as stored: no codec, no failure converter.
    rawClient = new Client({ connection: env.connection, namespace: 'default' });
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: 'codec',
      workflowsPath,
      dataConverter,
      activities: {
        greet: async (name: string) => {
          if (name === FAILING_NAME) {
            throw ApplicationFailure.nonRetryable(`cannot greet ${name}`, 'GreetRefused');
          }
          return activities.greet(name);
        },
      },
    });
    workerDone = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await workerDone;
    await env?.teardown();
  });

  test('the codec-enabled client reads the real result; the stored history holds only ciphertext', async () => {
    const result = await env.client.workflow.execute(sleepThenGreet, {
      taskQueue: 'codec',
      workflowId: okId,
      args: [NAME, '2 seconds'],
    });
    assert.equal(result.greeting, `Hello, ${NAME}!`);

    const raw = await rawHistoryBytes(rawClient, okId);
    assert.equal(raw.indexOf(NAME), -1, 'the workflow input is stored in plain text');
    assert.equal(raw.indexOf('Hello,'), -1, 'the result is stored in plain text');
    assert.equal(raw.indexOf('json/plain'), -1, 'a payload escaped encryption');
    assert.ok(raw.indexOf('binary/encrypted') >= 0);
    assert.ok(raw.indexOf('codec-test-k1') >= 0);

    // The same stored events decode to the real values with the codec.
    const history = await rawClient.workflow.getHandle(okId).fetchHistory();
    const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
    const input = await new AesGcmPayloadCodec(keyring).decode(started?.input?.payloads ?? []);
    assert.deepEqual(
      input.map((p) => defaultPayloadConverter.fromPayload(p)),
      [NAME, '2 seconds'],
    );
    const completed = history.events?.find(
      (e) => e.workflowExecutionCompletedEventAttributes,
    )?.workflowExecutionCompletedEventAttributes;
    const [output] = await new AesGcmPayloadCodec(keyring).decode(completed?.result?.payloads ?? []);
    assert.equal(
      defaultPayloadConverter.fromPayload<{ greeting: string }>(output!).greeting,
      `Hello, ${NAME}!`,
    );
  });

  test('a failure message is encrypted in the history and decrypted for the codec-enabled client', async () => {
    const error = await env.client.workflow
      .execute(sleepThenGreet, { taskQueue: 'codec', workflowId: failId, args: [FAILING_NAME, '1 second'] })
      .then(
        () => assert.fail('the workflow should have failed'),
        (err: unknown) => err,
      );
    assert.ok(error instanceof WorkflowFailedError);
    const refused = error.cause?.cause;
    assert.ok(refused instanceof ApplicationFailure);
    assert.equal(refused.type, 'GreetRefused');
    assert.equal(refused.message, `cannot greet ${FAILING_NAME}`);

    const raw = await rawHistoryBytes(rawClient, failId);
    assert.equal(raw.indexOf(FAILING_NAME), -1, 'the failing input or failure message is in plain text');
    assert.equal(raw.indexOf('cannot greet'), -1, 'the failure message is in plain text');
    assert.ok(raw.indexOf('Encoded failure') >= 0);
  });

  test('the start-up check passes with the right keyring and names the problem with a wrong one', async () => {
    const ok = await verifyKeyringAgainstHistory(rawClient, keyring, { workflowId: okId });
    assert.deepEqual(ok.keyIdsSeen, ['codec-test-k1']);
    const sameIdWrongKey = new Keyring([{ id: 'codec-test-k1', key: randomBytes(32) }]);
    await assert.rejects(
      verifyKeyringAgainstHistory(rawClient, sameIdWrongKey, { workflowId: okId }),
      /key 'codec-test-k1' failed authentication: the key loaded under that id is wrong/,
    );
    const otherKeys = new Keyring([{ id: 'someone-else', key: randomBytes(32) }]);
    await assert.rejects(
      verifyKeyringAgainstHistory(rawClient, otherKeys, { workflowId: okId }),
      /encrypted with key 'codec-test-k1', which is not in the keyring \(loaded: someone-else\)/,
    );
  });

  test('a client without the codec cannot read the result: a clear error, not ciphertext as data', async () => {
    await assert.rejects(rawClient.workflow.getHandle(okId).result(), /Unknown encoding: binary\/encrypted/);
  });

  test('issue 15 finding 2: a workflow started with plain input (no codec) is refused by the worker', async () => {
    const plainId = `codec-plain-${Date.now()}`;
    // What `temporal workflow start --input` does: the input stored as json/plain.
    await rawClient.workflow.start(sleepThenGreet, {
      taskQueue: 'codec',
      workflowId: plainId,
      args: ['plain-input', '1 second'],
    });
    const handle = rawClient.workflow.getHandle(plainId);
    const failed = await pollUntil(
      async () => {
        const events = (await handle.fetchHistory()).events ?? [];
        return events.find((e) => e.workflowTaskFailedEventAttributes) ? events : undefined;
      },
      { timeoutMs: 30_000, what: 'a failed workflow task for the plain input' },
    );
    assert.equal(
      failed.filter((e) => e.activityTaskScheduledEventAttributes).length,
      0,
      'no activity ran on plain input',
    );
    const failure = failed.find((e) => e.workflowTaskFailedEventAttributes)!
      .workflowTaskFailedEventAttributes!.failure!;
    // The failure converter encrypts the message too: decoded with the key, it names the refusal.
    const [attributes] = await new AesGcmPayloadCodec(keyring).decode([failure.encodedAttributes!]);
    const message = String(
      (defaultPayloadConverter.fromPayload(attributes!) as { message?: string }).message,
    );
    assert.match(message, /Refused a payload that is not encrypted \(encoding 'json\/plain'\)/);
    assert.equal((await handle.describe()).status.name, 'RUNNING', 'not completed: nothing was done');
    await handle.terminate('test over');
  });
});
