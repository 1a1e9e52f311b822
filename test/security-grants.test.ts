/**
 * Issue 15, finding 1: what a workflow carries is an operation grant, good for that one workflow only. A thief
 * who reads it out of a history (or a payload) and holds the Temporal port can do nothing else with it: not
 * delete the server, not boot another, not use it at an API as a token, not re-scope it into a token, and not
 * even run its own workflow once its token is revoked or it has expired. A token in a workflow input (what clients sent before),
 * even a valid one, runs nothing. The harness runs without the codec, so histories are read as stored.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { UNAUTHORIZED_MESSAGE } from '../cloud/keystone';
import { bootWorkflowId, CONTROLLER_QUEUE, deleteWorkflowId } from '../workflows/names';
import type { BootResult } from '../workflows/types';
import {
  HARNESS_TIMEOUT,
  openSecurityHarness,
  typedFailureOf,
  type SecurityHarness,
} from './helpers/security-harness';

const HOUR = 3_600_000;

/** The workflow's input as the Temporal service stores it (no codec in this harness). */
async function storedInput(client: Client, workflowId: string): Promise<{ auth: Record<string, string> }> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads as Payload[];
  return defaultPayloadConverter.fromPayload(payloads[0]!);
}

/** Starts a workflow as someone with only the Temporal port would: the raw client, input as given. */
async function startAsThief(h: SecurityHarness, type: string, workflowId: string, input: unknown) {
  const handle = await h.rawClient.workflow.start(type, {
    taskQueue: CONTROLLER_QUEUE,
    workflowId,
    args: [input],
    workflowExecutionTimeout: '1 hour',
  });
  return handle.result().then(
    () => 'allowed',
    (err: unknown) => {
      if (!(err instanceof WorkflowFailedError)) throw err;
      const failure = typedFailureOf(err);
      return `${failure?.type}: ${failure?.message}`;
    },
  );
}

describe('operation grants: a stolen history is good for nothing else', HARNESS_TIMEOUT, () => {
  let h: SecurityHarness;
  let server: BootResult;
  let bootId: string;
  let grant: string;
  let requestId: string;

  before(async () => {
    h = await openSecurityHarness('sec-grants');
    requestId = `grant-${randomUUID()}`;
    bootId = bootWorkflowId(requestId);
    await h.syncClock();
    server = await h.run<BootResult>(
      'create',
      {
        requestId,
        auth: h.demoAuth(),
        name: 'granted',
        flavor: 'm1.tiny',
        image: h.boot.imageId,
        networks: [h.boot.publicNetworkId],
      },
      bootId,
    );
    assert.equal(server.status, 'ACTIVE');
    const input = await storedInput(h.rawClient, bootId);
    assert.deepEqual(Object.keys(input.auth), ['grant'], 'the input holds a grant, no password or token');
    grant = input.auth.grant!;
  });

  after(async () => {
    await h?.close();
  });

  test('the grant does not delete the server it booted', async () => {
    const outcome = await startAsThief(h, 'deleteInstance', deleteWorkflowId(server.id), {
      requestId: `thief-${randomUUID()}`,
      auth: { grant },
      instanceUuid: server.id,
    });
    assert.equal(outcome, `Unauthorized: ${UNAUTHORIZED_MESSAGE}`);
    assert.equal((await h.cloud.nova.getInstance(server.id)).vmState, 'active');
  });

  test('the grant does not boot another server, nor read the project', async () => {
    const before = (await h.cloud.nova.listInstances({ allProjects: true })).length;
    const other = `thief-${randomUUID()}`;
    const boot = await startAsThief(h, 'createInstance', bootWorkflowId(other), {
      requestId: other,
      auth: { grant },
      name: 'stolen',
      flavor: 'm1.tiny',
      image: h.boot.imageId,
      networks: [h.boot.publicNetworkId],
    });
    assert.equal(boot, `Unauthorized: ${UNAUTHORIZED_MESSAGE}`);
    const list = await startAsThief(h, 'listServers', `thief-list-${randomUUID()}`, { auth: { grant } });
    assert.equal(list, `Unauthorized: ${UNAUTHORIZED_MESSAGE}`);
    assert.equal((await h.cloud.nova.listInstances({ allProjects: true })).length, before);
  });

  test('the grant is no token: not at the APIs, not re-scoped into one', async () => {
    await assert.rejects(h.cloud.keystone.validateToken(grant), { message: UNAUTHORIZED_MESSAGE });
    await assert.rejects(h.cloud.keystone.issueToken({ method: 'token', token: grant }), {
      message: UNAUTHORIZED_MESSAGE,
    });
    await assert.rejects(
      h.cloud.keystone.issueGrant(grant, { workflowType: 'deleteInstance', workflowId: 'x' }),
      { message: UNAUTHORIZED_MESSAGE },
    );
  });

  test('a token in a workflow input, even a valid one, runs nothing', async () => {
    const { token } = await h.cloud.keystone.authenticate({
      username: h.boot.demo.username,
      password: h.boot.demo.password,
      projectName: h.boot.demo.projectName,
    });
    const before = (await h.cloud.nova.listInstances({ allProjects: true })).length;
    const id = `legacy-${randomUUID()}`;
    const outcome = await startAsThief(h, 'createInstance', bootWorkflowId(id), {
      requestId: id,
      auth: { token },
      name: 'with-a-token',
      flavor: 'm1.tiny',
      image: h.boot.imageId,
      networks: [h.boot.publicNetworkId],
    });
    assert.match(outcome, /^Unauthorized: A workflow must carry an operation grant/);
    assert.equal((await h.cloud.nova.listInstances({ allProjects: true })).length, before);
  });

  test('once its token is revoked, the grant does not run its own workflow', async () => {
    // Past the millisecond of the bootstrap's password set-up, which revokes what was issued up to it.
    h.clock.advance(1_000);
    const { token } = await h.cloud.keystone.authenticate({
      username: h.boot.demo.username,
      password: h.boot.demo.password,
      projectName: h.boot.demo.projectName,
    });
    const id = `revoked-${randomUUID()}`;
    const { grant: revoked } = await h.cloud.keystone.issueGrant(token, {
      workflowType: 'createInstance',
      workflowId: bootWorkflowId(id),
    });
    const operation = { workflowType: 'createInstance', workflowId: bootWorkflowId(id) };
    assert.ok((await h.cloud.keystone.validateGrant(revoked, operation)).projectId, 'valid until revoked');
    await h.cloud.keystone.revokeToken(token);
    await assert.rejects(h.cloud.keystone.validateGrant(revoked, operation), {
      message: UNAUTHORIZED_MESSAGE,
    });
    const before = (await h.cloud.nova.listInstances({ allProjects: true })).length;
    const outcome = await startAsThief(h, 'createInstance', bootWorkflowId(id), {
      requestId: id,
      auth: { grant: revoked },
      name: 'revoked',
      flavor: 'm1.tiny',
      image: h.boot.imageId,
      networks: [h.boot.publicNetworkId],
    });
    assert.equal(outcome, `Unauthorized: ${UNAUTHORIZED_MESSAGE}`);
    assert.equal((await h.cloud.nova.listInstances({ allProjects: true })).length, before);
  });

  test('a grant made after its token (a second later) still dies when the token is revoked', async () => {
    // The revocation event of one token is judged at the token's issue time: a grant must carry that
    // time, not only its own (which is later), or revoking the token leaves its grants good.
    h.clock.advance(1_000);
    const { token } = await h.cloud.keystone.authenticate({
      username: h.boot.demo.username,
      password: h.boot.demo.password,
      projectName: h.boot.demo.projectName,
    });
    h.clock.advance(1_000);
    const operation = { workflowType: 'createInstance', workflowId: bootWorkflowId(`late-${randomUUID()}`) };
    const { grant: late } = await h.cloud.keystone.issueGrant(token, operation);
    assert.ok((await h.cloud.keystone.validateGrant(late, operation)).projectId, 'valid until revoked');
    await h.cloud.keystone.revokeToken(token);
    await assert.rejects(h.cloud.keystone.validateGrant(late, operation), { message: UNAUTHORIZED_MESSAGE });
    await assert.rejects(h.cloud.keystone.validateGrant(late, operation, { allowExpired: true }), {
      message: UNAUTHORIZED_MESSAGE,
    });
  });

  test('once expired (with its token), the grant does not even re-run its own workflow', async () => {
    h.clock.advance(2 * HOUR);
    const outcome = await startAsThief(h, 'createInstance', bootId, {
      requestId,
      auth: { grant },
      name: 'granted-again',
      flavor: 'm1.tiny',
      image: h.boot.imageId,
      networks: [h.boot.publicNetworkId],
    });
    assert.equal(outcome, `Unauthorized: ${UNAUTHORIZED_MESSAGE}`);
  });
});
