/**
 * No secret in what Temporal stores or what the logs say. A full run with the encrypting data converter
 * (keys from a 0600 key file, rotated once): boots from an image and from a volume, a refused password, a
 * build that fails deep (the volume backend fails, the saga cleans up), show, list, audit, and deletes by
 * password and by token. Then the stored histories are read RAW (no codec: proto bytes, and the JSON that
 * `temporal workflow show -o json` prints) together with every pino line the workers wrote at trace level,
 * and none of the passwords, tokens, codec keys or the token-signing key appears in any form (text, hex,
 * base64 at any alignment); every payload outside the search attributes is `binary/encrypted` under the
 * newest key (a local activity's marker: its result encrypted, only the SDK core's own record of the step in
 * plain JSON). The same histories decode with the codec to the real inputs (passwords included), tokens
 * and results, and the codec client reads the results and typed failures.
 *
 * Then the same through client.ts against a deployment with its own Keystone API (the api role on a free
 * port, named by the openrc files' OS_AUTH_URL): a boot, a delete and the audit, whose stored histories,
 * decrypted with the deployment's keys, hold neither password anywhere (the client exchanged each for a
 * token at Keystone first); and a wrong password refused by Keystone (401) before any workflow starts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { SIGNING_KEY_FILE } from '../cloud/keystone';
import {
  AesGcmPayloadCodec,
  codecKeyFilePath,
  ensureCodecKeyFile,
  ENCRYPTED_ENCODING,
  encryptedKeyId,
  loadCodecKeyFile,
  rotateCodecKey,
  type Keyring,
} from '../lib/codec';
import { bootflowDataConverter, loadKeyringOrExplain } from '../lib/command-line/temporal';
import { readOpenrc } from '../cloud/bootstrap';
import { pollUntil } from '../lib/poll';
import { bootWorkflowId } from '../workflows/names';
import { createLogger, installTemporalRuntime } from '../lib/logger';
import type { BootAuth, BootResult } from '../workflows/types';
import { addTenantUser } from './helpers/security';
import {
  HARNESS_TIMEOUT,
  failureTypeOf,
  openSecurityHarness,
  typedFailureOf,
  type SecurityHarness,
} from './helpers/security-harness';
import {
  findSecrets,
  jwsTokensIn,
  payloadsIn,
  plainPayloadsIn,
  secret,
  type Secret,
} from './helpers/security-secrets';
import { startApiDeployment, type ApiDeployment } from './helpers/api-deployment';
import { parseJson, runClient } from './helpers/deployment';

// Every line the Temporal runtime, the workers and the activities log, at the most verbose level. Installed
// before anything else touches the runtime (it is installed once per process).
const logLines: string[] = [];
installTemporalRuntime(
  createLogger({
    env: { LOG_LEVEL: 'trace', LOG_FORMAT: 'json' },
    destination: new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString('utf8'));
        done();
      },
    }),
  }),
);

type History = temporal.api.history.v1.IHistory;

/** The history as JSON with payload bytes in base64, as `temporal workflow show -o json` prints it. */
function historyJson(history: History): string {
  const { History: HistoryType } = temporal.api.history.v1;
  return JSON.stringify(
    HistoryType.toObject(HistoryType.fromObject(history), { longs: String, enums: String, bytes: String }),
  );
}

/** The fields of the SDK core's record in a local activity's marker (`details.data`). */
const CORE_RECORD_FIELDS = new Set([
  'seq',
  'attempt',
  'activity_id',
  'activity_type',
  'complete_time',
  'backoff',
  'original_schedule_time',
]);

/** A plain JSON payload of exactly the core's record: numbers, times, and the id and name of the step. */
function isCoreLocalActivityRecord(payload: Payload): boolean {
  if (Buffer.from(payload.metadata?.encoding ?? new Uint8Array()).toString() !== 'json/plain') return false;
  const record = JSON.parse(Buffer.from(payload.data ?? new Uint8Array()).toString('utf8')) as Record<
    string,
    unknown
  >;
  return (
    Object.keys(record).every((k) => CORE_RECORD_FIELDS.has(k)) &&
    typeof record.activity_type === 'string' &&
    /^\w+$/.test(record.activity_type) &&
    /^\d+$/.test(String(record.activity_id))
  );
}

describe('secrets stay out of histories and logs (encrypting data converter)', HARNESS_TIMEOUT, () => {
  let h: SecurityHarness;
  let keyDir: string;
  let keyring: Keyring;
  let codec: AesGcmPayloadCodec;
  const secrets: Secret[] = [];
  const workflowIds: string[] = [];
  let demoToken: string;
  let wrongPassword: string;
  const results = {} as {
    fromImage: BootResult;
    fromVolume: BootResult;
    refused: unknown;
    deep: unknown;
  };
  const histories = new Map<string, History>();

  const bootRequest = (auth: BootAuth, extra: Record<string, unknown> = {}) => ({
    requestId: `secrets-${randomUUID()}`,
    auth,
    name: `secrets-${workflowIds.length}`,
    flavor: 'm1.tiny',
    image: h.boot.imageId,
    networks: [h.boot.privateNetworkId],
    ...extra,
  });
  const run = async <T>(operation: Parameters<SecurityHarness['start']>[0], request: unknown): Promise<T> => {
    const handle = await h.start(operation, request);
    workflowIds.push(handle.workflowId);
    return (await handle.result()) as T;
  };
  const failure = (work: Promise<unknown>) =>
    work.then(
      () => assert.fail('expected the workflow to fail'),
      (err: unknown) => err,
    );

  before(async () => {
    // Keys as the bootstrap makes them: a 0600 key file, then a rotation (new payloads use the newest key).
    keyDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-secrets-keys-'));
    const first = ensureCodecKeyFile(keyDir);
    await rotateCodecKey(keyDir);
    keyring = loadCodecKeyFile(keyDir);
    assert.equal(keyring.ids.length, 2);
    assert.notEqual(keyring.currentId, first.keyring.currentId);
    codec = new AesGcmPayloadCodec(keyring);
    const keyFile = JSON.parse(readFileSync(codecKeyFilePath(keyDir), 'utf8')) as {
      keys: Array<{ id: string; key: string }>;
    };
    for (const { id, key } of keyFile.keys)
      secrets.push(secret(`codec key ${id}`, Buffer.from(key, 'base64')));

    h = await openSecurityHarness('sec-secrets', { dataConverter: bootflowDataConverter(keyring) });
    const pem = readFileSync(path.join(h.cloud.dataDir, 'keystone', SIGNING_KEY_FILE), 'utf8');
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    secrets.push(
      secret('token signing key (PKCS#8)', der),
      secret('token signing key (seed)', der.subarray(-32)),
    );
    secrets.push(
      secret('demo password', h.boot.demo.password),
      secret('admin password', h.boot.admin.password),
    );
    wrongPassword = `wrong-${randomBytes(12).toString('base64url')}`;
    secrets.push(secret('the refused password', wrongPassword));
    const reader = await addTenantUser(h.cloud, { username: 'rosa', projectName: 'demo', role: 'reader' });
    secrets.push(secret('reader password', reader.password));

    results.fromImage = await run<BootResult>('create', bootRequest(h.demoAuth()));
    results.fromVolume = await run<BootResult>(
      'create',
      bootRequest(h.demoAuth(), { bootVolume: { sizeGb: 1, deleteOnTermination: true } }),
    );
    results.refused = await failure(
      run('create', bootRequest(h.credentials(h.boot.demo.username, wrongPassword, 'demo'))),
    );
    h.cloud.cinder.setFaults({ create: { mode: 'fail', message: 'cinder-volume: backend unavailable' } });
    try {
      results.deep = await failure(run('create', bootRequest(h.demoAuth(), { bootVolume: { sizeGb: 1 } })));
    } finally {
      h.cloud.cinder.setFaults(undefined);
    }
    const readerAuth = h.credentials(reader.username, reader.password, 'demo');
    await run('show', { auth: readerAuth, server: results.fromImage.id });
    await run('list', { auth: readerAuth });
    await run('audit', { auth: h.adminAuth() });
    // One delete with a token the client already holds, one with the password.
    await h.syncClock();
    demoToken = (
      await h.cloud.keystone.authenticate({
        username: h.boot.demo.username,
        password: h.boot.demo.password,
        projectName: 'demo',
      })
    ).token;
    await run('delete', {
      requestId: `secrets-del-${randomUUID()}`,
      auth: { token: demoToken },
      instanceUuid: results.fromImage.id,
    });
    await run('delete', {
      requestId: `secrets-del-${randomUUID()}`,
      auth: h.demoAuth(),
      instanceUuid: results.fromVolume.id,
    });

    for (const id of workflowIds) histories.set(id, await h.rawClient.workflow.getHandle(id).fetchHistory());
    // Every token the runs carried (sessions, activity arguments), read back through the codec.
    const tokens = new Set<string>([demoToken]);
    // Plain payloads too (a local activity's marker record, or anything that missed the codec): a token in
    // clear anywhere is then a secret the raw search below looks for.
    for (const history of histories.values()) {
      for (const { payload } of payloadsIn(history)) {
        const [plain] = isEncrypted(payload) ? await codec.decode([payload]) : [payload];
        jwsTokensIn(fromPayloadOrBytes(plain as Payload), tokens);
      }
    }
    [...tokens].forEach((token, i) => secrets.push(secret(`keystone token #${i + 1}`, token)));
  }, HARNESS_TIMEOUT);
  after(async () => {
    await h?.close();
    rmSync(keyDir, { recursive: true, force: true });
  }, HARNESS_TIMEOUT);

  /** A payload's value, or (a payload the converter cannot read) its bytes as text. */
  function fromPayloadOrBytes(payload: Payload): unknown {
    try {
      return defaultPayloadConverter.fromPayload(payload);
    } catch {
      return Buffer.from(payload.data ?? new Uint8Array()).toString('utf8');
    }
  }

  function isEncrypted(payload: Payload): boolean {
    const encoding = payload.metadata?.encoding;
    return (
      encoding !== undefined && encoding !== null && Buffer.from(encoding).toString() === ENCRYPTED_ENCODING
    );
  }

  test('the runs did what they should, as the codec client sees them', () => {
    assert.equal(results.fromImage.status, 'ACTIVE');
    assert.equal(results.fromVolume.status, 'ACTIVE');
    assert.ok(results.refused instanceof WorkflowFailedError);
    assert.equal(failureTypeOf(results.refused), 'Unauthorized');
    assert.equal(
      typedFailureOf(results.refused)?.message,
      'The request you have made requires authentication.',
    );
    assert.ok(results.deep instanceof WorkflowFailedError);
    assert.match(typedFailureOf(results.deep)?.message ?? '', /backend unavailable|[Vv]olume/);
    assert.equal(workflowIds.length, 9);
    assert.ok(secrets.filter((s) => s.name.startsWith('keystone token')).length >= 5, 'tokens were found');
  });

  test('raw stored histories (proto bytes and JSON) hold no password, token or key in any form', () => {
    const leaks: string[] = [];
    for (const [id, history] of histories) {
      const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
      for (const found of findSecrets(bytes, secrets)) leaks.push(`${id} (proto): ${found}`);
      for (const found of findSecrets(historyJson(history), secrets)) leaks.push(`${id} (JSON): ${found}`);
    }
    assert.deepEqual(leaks, []);
  });

  test('every payload but the search attributes and SDK markers is binary/encrypted under the newest key', () => {
    const plain: string[] = [];
    const keyIds = new Set<string>();
    let markerResults = 0;
    for (const [id, history] of histories) {
      for (const { path: where, payload } of payloadsIn(history)) {
        if (/searchAttributes/i.test(where)) continue;
        // patched()'s marker: the SDK core writes the patch id itself, never through the data converter.
        if (/markerRecordedEventAttributes\.details\.patch-data\./.test(where)) continue;
        // A local activity's marker: `data` is the SDK core's own record of the step (ids, type, attempt,
        // times), never through the data converter; only that exact shape may be plain. Its result (and a
        // failure's attributes) are the worker's payloads: encrypted like an activity's.
        if (
          /markerRecordedEventAttributes\.details\.data\./.test(where) &&
          isCoreLocalActivityRecord(payload)
        )
          continue;
        if (/markerRecordedEventAttributes\.details\.result\./.test(where)) markerResults++;
        if (!isEncrypted(payload)) plain.push(`${id}${where}`);
        else keyIds.add(encryptedKeyId(payload) ?? '?');
      }
    }
    assert.deepEqual(plain, []);
    assert.deepEqual([...keyIds], [keyring.currentId]);
    assert.ok(markerResults >= 10, `local activities' marker results were read (${markerResults})`);
  });

  test('the pino output of the whole run, trace level included, holds no password, token or key', () => {
    assert.ok(logLines.length > 50, `the logs were captured (${logLines.length} lines)`);
    assert.ok(
      logLines.some((line) => line.includes('"level":10')),
      'trace lines (activations, completions) were captured',
    );
    assert.deepEqual(findSecrets(logLines.join(''), secrets), []);
  });

  test('the databases hold no password or token in clear', async () => {
    const rows = JSON.stringify(await h.snapshotter.snapshot());
    const clear = secrets.filter((s) => /password|token/.test(s.name));
    assert.deepEqual(findSecrets(rows, clear), []);
  });

  test('with the codec, the same histories decode to the real inputs, tokens and results', async () => {
    const decode = async (payloads: Payload[] | null | undefined) =>
      Promise.all((await codec.decode(payloads ?? [])).map((p) => defaultPayloadConverter.fromPayload(p)));
    const [bootId, , refusedId] = workflowIds as [string, string, string];
    const started = (id: string) =>
      histories.get(id)?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads as Payload[];

    // Issue 15: the input carries only an operation grant for this workflow, neither password nor token.
    const [bootInput] = (await decode(started(bootId))) as Array<{ auth: BootAuth; name: string }>;
    assert.deepEqual(Object.keys(bootInput?.auth ?? {}), ['grant']);
    assert.doesNotMatch(JSON.stringify(bootInput), new RegExp(h.boot.demo.password));
    const completed = histories
      .get(bootId)
      ?.events?.find(
        (e) => e.workflowExecutionCompletedEventAttributes,
      )?.workflowExecutionCompletedEventAttributes;
    const [result] = (await decode(completed?.result?.payloads as Payload[])) as BootResult[];
    assert.equal(result?.id, results.fromImage.id);
    assert.equal(result?.status, 'ACTIVE');

    const [refusedInput] = (await decode(started(refusedId))) as Array<{ auth: object }>;
    assert.deepEqual(Object.keys(refusedInput?.auth ?? {}), ['grant']);
    assert.doesNotMatch(JSON.stringify(refusedInput), new RegExp(wrongPassword));

    // Not even the token the client held is in the delete's input: a grant made from it; the grant stands in
    // for a token in the sessions of the activity results.
    const deleteId = workflowIds[7] as string;
    const [deleteInput] = (await decode(started(deleteId))) as Array<{
      auth: { grant?: string; token?: string };
    }>;
    assert.equal(deleteInput?.auth.token, undefined);
    assert.notEqual(deleteInput?.auth.grant, demoToken);
    assert.match(deleteInput?.auth.grant ?? '', /^[\w-]+\.[\w-]+\.[\w-]+$/);
    // The controller's steps are local activities: keystone's session comes back in a marker's result.
    const sessionTokens = new Set<string>();
    const markerTokens = new Set<string>();
    for (const event of histories.get(bootId)?.events ?? []) {
      const done = event.activityTaskCompletedEventAttributes?.result?.payloads as Payload[] | undefined;
      if (done) jwsTokensIn(await decode(done), sessionTokens);
      const local = event.markerRecordedEventAttributes?.details?.result?.payloads as Payload[] | undefined;
      if (local) jwsTokensIn(await decode(local), markerTokens);
    }
    assert.ok(markerTokens.size >= 1, "the session token is in a local activity's marker result");
    for (const token of [...sessionTokens, ...markerTokens]) {
      assert.ok(
        secrets.some((s) => s.value.equals(Buffer.from(token))),
        'each token in a result is among the secrets the raw search looks for',
      );
    }

    // And the codec client gets the results and typed failures themselves.
    const again = (await h.client.workflow.getHandle(bootId).result()) as BootResult;
    assert.equal(again.id, results.fromImage.id);
    await assert.rejects(h.rawClient.workflow.getHandle(bootId).result(), /binary\/encrypted/);
  });
});

describe(
  'through client.ts: passwords go to Keystone, never into a workflow',
  { timeout: 10 * 60_000 },
  () => {
    let d: ApiDeployment;
    let connection: Connection;
    let client: Client;
    let codec: AesGcmPayloadCodec;
    const passwords: Secret[] = [];

    /**
     * Every workflow id the deployment's Temporal knows, but its own: the compute hosts' service workflows
     * and the reconciler's periodic runs (no caller, no auth; one may start while the test runs).
     */
    async function operationWorkflows(): Promise<Map<string, string>> {
      const found = new Map<string, string>();
      for await (const w of client.workflow.list()) {
        if (w.type !== 'computeService' && w.type !== 'reconcileInstances') found.set(w.workflowId, w.type);
      }
      return found;
    }

    before(async () => {
      d = await startApiDeployment('secrets-client');
      const keyring = loadKeyringOrExplain(d.dataDir);
      codec = new AesGcmPayloadCodec(keyring);
      connection = await Connection.connect({ address: d.temporalAddress });
      client = new Client({ connection, dataConverter: bootflowDataConverter(keyring) });
      for (const user of ['demo', 'admin'] as const) {
        const openrc = readOpenrc(path.join(d.dataDir, `${user}-openrc.sh`));
        assert.ok(openrc.password, `${user}-openrc.sh has a password`);
        passwords.push(secret(`${user} password`, openrc.password));
      }
    });
    after(async () => {
      await connection?.close();
      await d?.close();
    });

    test("the openrc files name this deployment's own Keystone", () => {
      const openrc = readFileSync(path.join(d.dataDir, 'demo-openrc.sh'), 'utf8');
      assert.match(openrc, new RegExp(`export OS_AUTH_URL='${d.apiUrl}/identity'`));
    });

    test('a boot, a delete and the audit carry a grant, and no password in any payload', async () => {
      const before = await operationWorkflows();
      const create = await runClient(
        [
          '-f',
          'json',
          'server',
          'create',
          '--flavor',
          'm1.tiny',
          '--image',
          'cirros',
          '--network',
          'private',
          '--wait',
          'no-password-vm',
        ],
        d.env,
        240_000,
      );
      assert.equal(create.code, 0, create.stderr);
      assert.equal(parseJson<{ status: string }>(create, 'server create').status, 'ACTIVE');
      const deleted = await runClient(['server', 'delete', '--wait', 'no-password-vm'], d.env, 240_000);
      assert.equal(deleted.code, 0, deleted.stderr);
      const audit = await runClient(['-f', 'json', 'audit'], d.env);
      assert.equal(audit.code, 0, audit.stderr);

      // Visibility catches up with the runs a moment after they end.
      const started = await pollUntil(
        async () => {
          const now = [...(await operationWorkflows())].filter(([id]) => !before.has(id));
          const types = new Set(now.map(([, type]) => type));
          const all = ['createInstance', 'deleteInstance', 'auditCloud'].every((t) => types.has(t));
          return all ? now : undefined;
        },
        { timeoutMs: 60_000, what: 'the boot, delete and audit workflows in the visibility store' },
      );
      const leaks: string[] = [];
      const inputAuth: string[] = [];
      for (const [id, type] of started) {
        const history = await client.workflow.getHandle(id).fetchHistory();
        const plain = await plainPayloadsIn(history, (p) => codec.decode(p));
        assert.ok(plain.length > 0, `${id} has payloads`);
        for (const { path: where, bytes } of plain) {
          for (const found of findSecrets(bytes, passwords)) leaks.push(`${type} ${id}${where}: ${found}`);
        }
        // The input itself: a grant for this workflow, and nothing the workflow could trade for another one.
        const input = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input
          ?.payloads as Payload[];
        const [request] = (await codec.decode(input)).map((p) =>
          defaultPayloadConverter.fromPayload(p),
        ) as Array<{
          auth?: Record<string, unknown>;
        }>;
        inputAuth.push(`${type}: ${Object.keys(request?.auth ?? {}).join(',')}`);
      }
      assert.deepEqual(leaks, []);
      assert.deepEqual(
        inputAuth,
        started.map(([, type]) => `${type}: grant`),
      );
    });

    test('a wrong password: Unauthorized (HTTP 401) from Keystone, exit 1, no workflow started', async () => {
      const before = await operationWorkflows();
      const requestId = `req-${randomUUID()}`;
      const wrongPassword = `wrong-${randomBytes(12).toString('base64url')}`;
      const run = await runClient(
        [
          ...['server', 'create', '--flavor', 'm1.tiny', '--image', 'cirros', '--network', 'private'],
          ...['--request-id', requestId, 'never-vm'],
        ],
        { ...d.env, OS_USERNAME: 'demo', OS_PASSWORD: wrongPassword, OS_PROJECT_NAME: 'demo' },
      );
      assert.equal(run.code, 1, run.stderr);
      assert.match(
        run.stderr,
        /Unauthorized: The request you have made requires authentication\. \(HTTP 401\)/,
      );
      assert.doesNotMatch(run.stderr, new RegExp(wrongPassword));
      await assert.rejects(
        client.workflow.getHandle(bootWorkflowId(requestId)).describe(),
        WorkflowNotFoundError,
        'the boot workflow was never started',
      );
      assert.deepEqual([...(await operationWorkflows()).keys()], [...before.keys()]);
    });
  },
);
