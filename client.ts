/**
 * bootflow's command-line client, with the OpenStack client's habits:
 *
 *   bootflow server create --flavor m1.tiny --image cirros --network private [--boot-from-volume 1] [--wait] NAME
 *   bootflow server show NAME_OR_ID | server list [--all-projects] | server delete [--wait] NAME_OR_ID...
 *   bootflow server console-log NAME_OR_ID [--lines N]            (the guest's serial console)
 *   bootflow server stop|start NAME_OR_ID... [--wait] | server reboot [--hard] [--wait] NAME_OR_ID...
 *   bootflow host evacuate HOST                                     (admin; one child workflow per server)
 *   bootflow hypervisor list | bootflow audit                       (-f json|table on every command)
 *
 * It talks to Keystone once (for a token) and otherwise only to Temporal: `server create`, `delete`, `stop`,
 * `start` and `reboot` start their workflows, the
 * read commands run short workflows whose activities read the cloud on the controller and network nodes.
 * Credentials come from --os-* flags, OS_* variables, or the bootstrap's openrc file; a password is exchanged
 * for a token at the Keystone API (OS_AUTH_URL) before any workflow starts, and workflows get only the
 * token. Exit codes: 0 ok, 1 the operation failed, 2 usage or configuration, 3 Temporal, its workers or
 * Keystone unreachable.
 */
import { randomUUID } from 'node:crypto';
import { Command, CommanderError, Option } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { resolveAuth, type CredentialFlags } from './lib/command-line/credentials';
import { caCertFileOf, issueGrant, issueToken } from './lib/command-line/keystone';
import { escapeControls, note, print, renderJson, type OutputFormat } from './lib/command-line/output';
import { positiveWhole } from './lib/command-line/numbers';
import { BootProgress } from './lib/command-line/progress';
import type { TemporalHandle } from './lib/command-line/temporal';
import { dataDirFromEnv, EXIT, UserError } from './lib/command-line/usage';
import { auditTable, hypervisorTable, serverFields, serverListTable } from './lib/command-line/views';
import {
  bootWorkflowId,
  CONTROLLER_QUEUE,
  deleteWorkflowId,
  serverOperationWorkflowId,
} from './workflows/names';
import type { ConsoleOutput } from './workflows/console-output';
import type { EvacuateHostResult } from './workflows/evacuate';
import type { auditCloud, listHypervisors, listServers, showServer } from './workflows/operator';
import type { ServerView } from './workflows/operator-types';
import type { OperationPhase } from './workflows/server-operation';
import type {
  BootRequest,
  BootResult,
  BootStatus,
  DeleteResult,
  ServerOperationName,
  ServerOperationResult,
} from './workflows/types';
import { usePrivateUmask } from './lib/file-modes';
import { pollUntil } from './lib/poll';

/** The caller's Keystone token and where it came from; it never goes into a workflow (grants do). */
type TokenAuth = { token: string; authUrl?: string };
type Caller = 'admin' | 'demo';

interface GlobalOptions extends CredentialFlags {
  /** CA bundle for an https OS_AUTH_URL (openstackclient's --os-cacert). */
  osCacert?: string;
  format: OutputFormat;
  dataDir: string;
}

/** How long a read may wait for the controller before the client gives up (a worker should answer in ms). */
const READ_TIMEOUT = '1 minute';
/** When to tell the user that nothing has picked the work up yet. */
const NO_WORKER_HINT_MS = 5_000;
/** How long one status query may take (a worker answers in ms; longer means none, or no Temporal). */
const STATUS_TIMEOUT_MS = 3_000;

/**
 * Temporal's modules load only when a command talks to Temporal: `--help` and usage errors answer without
 * them (they take most of a second to load).
 */
const temporalClient = () => import('@temporalio/client');
const temporalSettings = () => import('./lib/command-line/temporal.js');
const failureMessages = () => import('./lib/command-line/errors.js');
const followHelpers = () => import('./lib/command-line/follow.js');
const ownershipOf = () => import('./lib/workflow-ownership.js');

class Session {
  private temporal: TemporalHandle | undefined;
  private readonly tokens = new Map<'admin' | 'demo', Promise<TokenAuth>>();
  private uiLink: ((workflowId: string, namespace: string) => string) | undefined;

  constructor(readonly options: GlobalOptions) {}

  /** A token for the command, exchanged once per run at Keystone when a password was given. */
  auth(fallbackUser: 'admin' | 'demo'): Promise<TokenAuth> {
    let token = this.tokens.get(fallbackUser);
    if (token === undefined) {
      token = (async () => {
        const given = resolveAuth(this.options, { dataDir: this.options.dataDir, fallbackUser });
        if ('token' in given) return given;
        const caCertFile = caCertFileOf(this.options.osCacert, process.env);
        return {
          token: await issueToken(given.authUrl, given.password, caCertFile ? { caCertFile } : {}),
          authUrl: given.authUrl,
        };
      })();
      this.tokens.set(fallbackUser, token);
    }
    return token;
  }

  /** All a workflow gets from the client: Keystone's operation grant for that one workflow. */
  async grant(caller: Caller, workflowType: string, workflowId: string): Promise<{ grant: string }> {
    const { token, authUrl } = await this.auth(caller);
    if (!authUrl) {
      throw new UserError(
        'A token (--os-token) needs OS_AUTH_URL too: workflows get a grant from Keystone, never the token',
        EXIT.USAGE,
      );
    }
    const caCertFile = caCertFileOf(this.options.osCacert, process.env);
    return {
      grant: await issueGrant(authUrl, token, { workflowType, workflowId }, caCertFile ? { caCertFile } : {}),
    };
  }

  async connect(): Promise<TemporalHandle> {
    if (this.temporal) return this.temporal;
    const { connectTemporal, loadKeyringOrExplain, webUiLink } = await temporalSettings();
    this.uiLink = webUiLink;
    this.temporal = await connectTemporal({
      keyring: loadKeyringOrExplain(this.options.dataDir),
      // Unique per run: tells the boot this client started from one it joined (lib/command-line/follow.ts).
      identity: `bootflow-client@${process.pid}-${randomUUID().slice(0, 8)}`,
    });
    return this.temporal;
  }

  /** The Web UI's page of a workflow (once connected: links follow the connection's namespace). */
  link(workflowId: string): string {
    if (!this.uiLink) throw new Error('link() before connect()');
    return this.uiLink(workflowId, this.temporal?.namespace ?? 'default');
  }

  async close(): Promise<void> {
    await this.temporal?.close();
  }

  json(): boolean {
    return this.options.format === 'json';
  }
}

/** Waits for a workflow's result, telling the user once if no worker seems to pick it up. */
async function resultOf<T>(handle: WorkflowHandle, what: string): Promise<T> {
  const hint = setTimeout(
    () => note(`Still waiting for ${what}: is a controller worker running (\`npm run worker\`)?`),
    NO_WORKER_HINT_MS,
  );
  try {
    return (await handle.result()) as T;
  } finally {
    clearTimeout(hint);
  }
}

/** Runs one of the read-only operator workflows on the controller and returns its answer. */
async function read<T>(
  session: Session,
  workflowType: string,
  caller: Caller,
  fields: Record<string, unknown>,
  idPrefix: string,
): Promise<T> {
  const workflowId = `${idPrefix}-${randomUUID()}`;
  const request = { ...fields, auth: await session.grant(caller, workflowType, workflowId) };
  const { client } = await session.connect();
  const handle = await client.workflow.start(workflowType, {
    taskQueue: CONTROLLER_QUEUE,
    workflowId,
    args: [request],
    workflowExecutionTimeout: READ_TIMEOUT,
  });
  return resultOf<T>(handle, `${workflowType} (${handle.workflowId})`);
}

function showServerOf(
  session: Session,
  caller: Caller,
  server: string,
  allProjects = false,
): Promise<ServerView> {
  return read<Awaited<ReturnType<typeof showServer>>>(
    session,
    'showServer',
    caller,
    { server, allProjects },
    'server-show',
  );
}

/** JSON carries the extras (workflow id, Web UI link); the table shows the server, the link follows it. */
function printServer(session: Session, server: ServerView, extra: Record<string, string> = {}): void {
  if (session.json()) print(renderJson({ ...server, ...extra }));
  else print(serverFields(server));
}

async function pollStatus(temporal: TemporalHandle, handle: WorkflowHandle): Promise<BootStatus | undefined> {
  try {
    // Bounded: with Temporal away the call would otherwise sit in the connection's retries.
    return await temporal.connection.withDeadline(Date.now() + STATUS_TIMEOUT_MS, () =>
      handle.query<BootStatus>('status'),
    );
  } catch {
    return undefined; // no controller worker answering right now, or the run just closed
  }
}

interface CreateOptions {
  flavor: string;
  image: string;
  network: string[];
  bootFromVolume?: string;
  deleteOnTermination: boolean;
  availabilityZone?: string;
  maxAttempts?: string;
  requestId?: string;
  wait?: boolean;
}

function positiveInt(value: string | undefined, flag: string): number | undefined {
  return value === undefined ? undefined : positiveWhole(value, flag);
}

async function serverCreate(session: Session, name: string, options: CreateOptions): Promise<number> {
  if (options.network.length === 0) {
    throw new UserError('At least one --network is needed (e.g. --network private)', EXIT.USAGE);
  }
  const sizeGb = positiveInt(options.bootFromVolume, '--boot-from-volume');
  const maxAttempts = positiveInt(options.maxAttempts, '--max-attempts');
  const requestId = options.requestId ?? `req-${randomUUID()}`;
  const fields: Omit<BootRequest, 'auth'> = {
    requestId,
    name,
    flavor: options.flavor,
    image: options.image,
    networks: options.network,
    ...(sizeGb !== undefined
      ? { bootVolume: { sizeGb, deleteOnTermination: options.deleteOnTermination } }
      : {}),
    ...(options.availabilityZone ? { availabilityZone: options.availabilityZone } : {}),
    ...(maxAttempts !== undefined ? { maxAttempts } : {}),
  };
  // The workflow's own schema, here at the edge: a bad request never reaches Keystone or Temporal's history.
  // Loaded here, as Temporal's modules are: --help and usage errors answer without them.
  const { checkBootRequestFields } = await import('./workflows/request-schema.js');
  try {
    checkBootRequestFields(fields);
  } catch (err) {
    throw new UserError((err as Error).message, EXIT.USAGE);
  }
  const workflowId = bootWorkflowId(requestId);
  const request: BootRequest = { ...fields, auth: await session.grant('demo', 'createInstance', workflowId) };
  const temporal = await session.connect();
  const { startOrFollow, followResult, temporalReachable, unreachableMessage } = await followHelpers();
  // One request id, one boot: a running or finished boot of this request is followed, not started again.
  const { handle, joined } = await startOrFollow(temporal, {
    workflowType: 'createInstance',
    workflowId,
    args: [request],
    rerunFinished: false,
    ownership: (await ownershipOf()).bootOwnership(requestId),
  });
  if (joined) note(`Request ${requestId} was already submitted; following its workflow`);
  const link = session.link(workflowId);
  const extra = { workflowId, webUi: link };
  const settled = followResult<BootResult>(temporal, handle);

  if (!options.wait) {
    // Like `openstack server create` without --wait: answer once the server has an id (status BUILD).
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = await pollStatus(temporal, handle);
      if (status?.instanceUuid) {
        if (session.json()) {
          print(renderJson({ id: status.instanceUuid, name, status: 'BUILD', requestId, ...extra }));
        } else {
          print(`Server ${name} (${status.instanceUuid}) is building: request ${requestId}`);
          print(`Web UI: ${link}`);
          print(`Follow it with: bootflow server show ${status.instanceUuid}`);
        }
        return EXIT.OK;
      }
      const done = await Promise.race([settled, new Promise((r) => setTimeout(r, 300, undefined))]);
      if (done && !(done as { ok: boolean }).ok) break;
      if (Date.now() > deadline) {
        note(`The boot was accepted but no server id yet; is a controller worker running? ${link}`);
        if (session.json()) print(renderJson({ id: null, name, status: 'BUILD', requestId, ...extra }));
        return EXIT.OK;
      }
    }
  }

  const progress = new BootProgress({ title: `Creating server ${name} — ${link}` });
  let finished: Awaited<typeof settled> | undefined;
  let lastSeen: number = Date.now();
  // A Temporal that stays away rejects `settled` (exit 3): the race below passes that on.
  settled.then(
    (r) => (finished = r),
    () => undefined,
  );
  while (!finished) {
    const status = await pollStatus(temporal, handle);
    if (status) {
      lastSeen = Date.now();
      progress.update(status);
    } else if (!(await temporalReachable(temporal))) {
      // The server itself is away (killed, restarting): not a worker problem.
      progress.waiting(unreachableMessage(temporal));
    } else if (Date.now() - lastSeen > NO_WORKER_HINT_MS) {
      progress.waiting('waiting for a controller worker to run the workflow (is `npm run worker` running?)');
    }
    await Promise.race([settled, new Promise((r) => setTimeout(r, process.stderr.isTTY ? 150 : 500))]);
  }
  const finalStatus = await pollStatus(temporal, handle);
  if (finalStatus) progress.update(finalStatus);
  progress.finish();

  if (finished.ok) {
    printServer(session, await showServerOf(session, 'demo', finished.value.id), extra);
    if (!session.json()) print(`Web UI: ${link}`);
    return EXIT.OK;
  }
  const { describeFailure, failureInfo } = await failureMessages();
  const info = failureInfo(finished.error);
  const uuid = typeof info.details.instanceUuid === 'string' ? info.details.instanceUuid : null;
  const server = uuid ? await showServerOf(session, 'demo', uuid).catch(() => undefined) : undefined;
  if (server) printServer(session, server, extra);
  else if (session.json()) {
    const fault = { message: info.message, type: info.type, code: info.code };
    print(renderJson({ id: uuid, name, status: 'ERROR', requestId, fault, ...extra }));
  }
  note(`Error: server ${name} was not created: ${describeFailure(info)}`);
  note(`Web UI: ${link}`);
  return EXIT.FAILED;
}

async function serverShow(
  session: Session,
  ref: string,
  options: { allProjects?: boolean },
): Promise<number> {
  const caller = options.allProjects ? 'admin' : 'demo';
  printServer(session, await showServerOf(session, caller, ref, options.allProjects === true));
  return EXIT.OK;
}

async function serverList(session: Session, options: { allProjects?: boolean }): Promise<number> {
  const allProjects = options.allProjects === true;
  const servers = await read<Awaited<ReturnType<typeof listServers>>>(
    session,
    'listServers',
    allProjects ? 'admin' : 'demo',
    { allProjects },
    'server-list',
  );
  print(session.json() ? renderJson(servers) : serverListTable(servers, allProjects));
  return EXIT.OK;
}

/** `openstack console log show [--lines N] SERVER`: the guest's serial console, as the host keeps it. */
async function serverConsoleLog(session: Session, ref: string, options: { lines?: string }): Promise<number> {
  let lines: number | undefined;
  if (options.lines !== undefined) {
    const n = Number(options.lines);
    if (!Number.isInteger(n) || n < -1)
      throw new UserError('--lines must be a whole number of lines (-1: all)', EXIT.USAGE);
    lines = n === -1 ? undefined : n;
  }
  const answer = await read<ConsoleOutput>(
    session,
    'getConsoleOutput',
    'demo',
    { server: ref, ...(lines === undefined ? {} : { lines }) },
    'console-output',
  );
  if (session.json()) print(renderJson({ output: answer.output }));
  else
    // The guest writes this text: its escapes are shown, not obeyed (serial consoles end lines with \r\n).
    if (answer.output)
      process.stdout.write(escapeControls(answer.output.replace(/\r\n/g, '\n').replace(/\n?$/, '\n')));
  return EXIT.OK;
}

async function serverDelete(session: Session, refs: string[], options: { wait?: boolean }): Promise<number> {
  const temporal = await session.connect();
  const { startOrFollow, followResult, unreachableMessage } = await followHelpers();
  const results: Array<DeleteResult | { id: string; name: string; workflowId: string; webUi: string }> = [];
  for (const ref of refs) {
    const server = await showServerOf(session, 'demo', ref);
    const workflowId = deleteWorkflowId(server.id);
    // A delete of this server already running is joined (once checked to be a real one); a finished one is
    // run again (it answers already-deleted, or retries a delete that failed).
    const { handle } = await startOrFollow(temporal, {
      workflowType: 'deleteInstance',
      workflowId,
      args: [
        {
          requestId: `req-${randomUUID()}`,
          auth: await session.grant('demo', 'deleteInstance', workflowId),
          instanceUuid: server.id,
        },
      ],
      rerunFinished: true,
      ownership: (await ownershipOf()).deleteOwnership(server.id),
    });
    const link = session.link(workflowId);
    if (!options.wait) {
      results.push({ id: server.id, name: server.name, workflowId, webUi: link });
      if (!session.json()) print(`Deleting server ${server.name} (${server.id}): ${link}`);
      continue;
    }
    if (!session.json()) note(`Deleting server ${server.name} (${server.id}) — ${link}`);
    let told = false;
    const settled = await followResult<DeleteResult>(temporal, handle, {
      onUnreachable: () => {
        if (!told) note(unreachableMessage(temporal));
        told = true;
      },
    });
    if (!settled.ok) throw settled.error;
    const result = settled.value;
    results.push(result);
    if (!session.json()) {
      const how = result.outcome === 'already-deleted' ? 'was already deleted' : 'deleted';
      const local = result.localDelete ? ' (its host was down: deleted locally)' : '';
      print(`Server ${server.name} (${server.id}) ${how}${local}`);
      // A delete_on_termination volume Cinder would not delete (the user has snapshots of it) stays.
      for (const kept of result.keptVolumes ?? []) print(`Volume ${kept.id} kept: ${kept.reason}`);
    }
  }
  if (session.json()) print(renderJson(results));
  return EXIT.OK;
}

type PowerCommand = 'stop' | 'start' | 'reboot';

const POWER_WORDS: Record<PowerCommand, { workflowType: string; doing: string; done: string }> = {
  stop: { workflowType: 'stopInstance', doing: 'Stopping', done: 'stopped' },
  start: { workflowType: 'startInstance', doing: 'Starting', done: 'started' },
  reboot: { workflowType: 'rebootInstance', doing: 'Rebooting', done: 'rebooted' },
};

/** How long the client waits to hear whether nova-api's checks let the operation begin. */
const BEGIN_WAIT_MS = 60_000;

/**
 * `openstack server stop|start|reboot [--hard]`: one workflow per server. Without --wait the client still
 * waits until nova-api's checks have let the operation begin (a refusal, Nova's 409, is an error here);
 * with --wait, until the host has done it.
 */
async function serverPower(
  session: Session,
  command: PowerCommand,
  refs: string[],
  options: { wait?: boolean; hard?: boolean },
): Promise<number> {
  const { client } = await session.connect();
  const words = POWER_WORDS[command];
  const operation: ServerOperationName =
    command === 'reboot' ? (options.hard ? 'reboot-hard' : 'reboot-soft') : command;
  const results: Array<
    ServerOperationResult | { id: string; name: string; workflowId: string; webUi: string }
  > = [];
  for (const ref of refs) {
    const server = await showServerOf(session, 'demo', ref);
    const requestId = `req-${randomUUID()}`;
    const workflowId = serverOperationWorkflowId(operation, server.id, requestId);
    const handle = await client.workflow.start(words.workflowType, {
      taskQueue: CONTROLLER_QUEUE,
      workflowId,
      args: [
        {
          requestId,
          auth: await session.grant('demo', words.workflowType, workflowId),
          instanceUuid: server.id,
          ...(command === 'reboot' ? { type: options.hard ? 'HARD' : 'SOFT' } : {}),
        },
      ],
    });
    const link = session.link(workflowId);
    const what = `the ${command} of ${server.name}`;
    if (!options.wait) {
      const phase = await pollUntil(
        async () => {
          const now = await handle.query<OperationPhase>('operationPhase');
          return now === 'beginning' ? undefined : now;
        },
        { timeoutMs: BEGIN_WAIT_MS, intervalMs: 200, what: `nova-api's checks for ${what}` },
      );
      // Refused (or failed at once): the workflow's typed failure is the answer.
      if (phase === 'failed') await resultOf(handle, what);
      results.push({ id: server.id, name: server.name, workflowId, webUi: link });
      if (!session.json()) print(`${words.doing} server ${server.name} (${server.id}): ${link}`);
      continue;
    }
    if (!session.json()) note(`${words.doing} server ${server.name} (${server.id}) — ${link}`);
    const result = await resultOf<ServerOperationResult>(handle, what);
    results.push(result);
    if (!session.json())
      print(
        `Server ${server.name} (${server.id}) ${words.done}: vm_state ${result.vmState}, power_state ${result.powerState}`,
      );
  }
  if (session.json()) print(renderJson(results));
  return EXIT.OK;
}

/**
 * `bootflow host evacuate <host>`: the evacuateHost workflow, one child evacuateServer per server of the
 * host (admin; the host's nova-compute must be down). Waits for every child and prints where each went.
 */
async function hostEvacuate(session: Session, host: string): Promise<number> {
  const { client } = await session.connect();
  const requestId = `req-${randomUUID()}`;
  const workflowId = `evacuate-host-${host}-${requestId}`;
  const auth = await session.grant('admin', 'evacuateHost', workflowId);
  const handle = await client.workflow.start('evacuateHost', {
    taskQueue: CONTROLLER_QUEUE,
    workflowId,
    args: [{ requestId, auth, host }],
  });
  if (!session.json()) note(`Evacuating host ${host} — ${session.link(workflowId)}`);
  const result = await resultOf<EvacuateHostResult>(handle, `the evacuation of ${host}`);
  if (session.json()) print(renderJson(result));
  else {
    for (const e of result.evacuated)
      print(`Server ${e.instanceUuid} evacuated: ${e.sourceHost} -> ${e.host}`);
    for (const f of result.failed) print(`Server ${f.instanceUuid} not evacuated: ${f.type}: ${f.message}`);
    if (result.evacuated.length + result.failed.length === 0) print(`No server on host ${host}`);
  }
  return result.failed.length > 0 ? EXIT.FAILED : EXIT.OK;
}

async function hypervisorList(session: Session): Promise<number> {
  const hypervisors = await read<Awaited<ReturnType<typeof listHypervisors>>>(
    session,
    'listHypervisors',
    'admin',
    {},
    'hypervisor-list',
  );
  print(session.json() ? renderJson(hypervisors) : hypervisorTable(hypervisors));
  return EXIT.OK;
}

async function audit(session: Session, options: { buildsInFlight?: boolean }): Promise<number> {
  const findings = await read<Awaited<ReturnType<typeof auditCloud>>>(
    session,
    'auditCloud',
    'admin',
    { buildsInFlight: options.buildsInFlight === true },
    'audit',
  );
  if (session.json()) print(renderJson(findings));
  else if (findings.length === 0) print('No leaks: every resource belongs to a live server.');
  else print(auditTable(findings));
  return findings.length === 0 ? EXIT.OK : EXIT.FAILED;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildProgram(run: (work: (session: Session) => Promise<number>) => Promise<void>): Command {
  const program = new Command('bootflow')
    .description('Boot and manage servers on the embedded OpenStack cloud through Temporal workflows')
    .addOption(
      new Option('-f, --format <format>', 'output format').choices(['table', 'json']).default('table'),
    )
    .option('--os-username <name>', 'user name (OS_USERNAME)')
    .option('--os-password <password>', 'password (OS_PASSWORD)')
    .option('--os-project-name <name>', 'project to scope to (OS_PROJECT_NAME)')
    .option('--os-user-domain-name <name>', "the user's domain (OS_USER_DOMAIN_NAME, default Default)")
    .option(
      '--os-project-domain-name <name>',
      "the project's domain (OS_PROJECT_DOMAIN_NAME, default Default)",
    )
    .option('--os-token <token>', 'a Keystone token instead of a password (OS_TOKEN)')
    .option('--os-auth-url <url>', "Keystone's URL, where a password is exchanged for a token (OS_AUTH_URL)")
    .option('--os-cacert <file>', "CA bundle that signs an https Keystone's certificate (OS_CACERT)")
    .option(
      '--data-dir <dir>',
      'data directory: openrc fall-back and encryption keys (BOOTFLOW_DATA)',
      dataDirFromEnv(),
    )
    .showHelpAfterError('(add --help for usage)')
    .exitOverride();

  const server = program.command('server').description('servers (Nova instances)').exitOverride();
  server
    .command('create')
    .description('boot a server (starts the createInstance workflow)')
    .argument('<name>', 'server name')
    .requiredOption('--flavor <flavor>', 'flavor name or id (e.g. m1.tiny)')
    .requiredOption('--image <image>', 'image name or id (e.g. cirros)')
    .option('--network <network>', 'network name or id; repeat for more NICs', collect, [])
    .option('--boot-from-volume <sizeGb>', 'boot from a new volume of this size (GB) made from the image')
    .option('--no-delete-on-termination', 'keep the boot volume when the server is deleted')
    .option('--availability-zone <zone>', 'availability zone')
    .option('--max-attempts <n>', 'scheduling attempts before giving up (Nova max_attempts, default 3)')
    .option('--request-id <id>', 'request id (idempotency key); a new one by default')
    .option('--wait', 'wait for ACTIVE or ERROR, showing the steps as they run')
    .exitOverride()
    .action((name: string, options: CreateOptions) => run((s) => serverCreate(s, name, options)));
  server
    .command('show')
    .description('show one server')
    .argument('<server>', 'server name or id')
    .option('--all-projects', 'look in every project (admin)')
    .exitOverride()
    .action((ref: string, options: { allProjects?: boolean }) => run((s) => serverShow(s, ref, options)));
  server
    .command('list')
    .description('list servers')
    .option('--all-projects', "every project's servers (admin)")
    .exitOverride()
    .action((options: { allProjects?: boolean }) => run((s) => serverList(s, options)));
  server
    .command('console-log')
    .description("the server's serial console log (os-getConsoleOutput)")
    .argument('<server>', 'server name or id')
    .option('--lines <n>', 'only the last N lines (-1: all)')
    .exitOverride()
    .action((ref: string, options: { lines?: string }) => run((s) => serverConsoleLog(s, ref, options)));
  server
    .command('delete')
    .description('delete servers (starts the deleteInstance workflow)')
    .argument('<server...>', 'server names or ids')
    .option('--wait', 'wait until each server is deleted')
    .exitOverride()
    .action((refs: string[], options: { wait?: boolean }) => run((s) => serverDelete(s, refs, options)));
  for (const command of ['stop', 'start'] as const) {
    server
      .command(command)
      .description(`${command} servers (starts the ${POWER_WORDS[command].workflowType} workflow)`)
      .argument('<server...>', 'server names or ids')
      .option('--wait', `wait until each server is ${POWER_WORDS[command].done}`)
      .exitOverride()
      .action((refs: string[], options: { wait?: boolean }) =>
        run((s) => serverPower(s, command, refs, options)),
      );
  }
  server
    .command('reboot')
    .description('reboot servers (starts the rebootInstance workflow): SOFT by default')
    .argument('<server...>', 'server names or ids')
    .option('--hard', 'a HARD reboot (reset) instead of a SOFT one (ACPI)')
    .option('--wait', 'wait until each server is rebooted')
    .exitOverride()
    .action((refs: string[], options: { wait?: boolean; hard?: boolean }) =>
      run((s) => serverPower(s, 'reboot', refs, options)),
    );
  program
    .command('hypervisor')
    .description('compute hosts')
    .exitOverride()
    .command('list')
    .description('compute hosts with their state and used and free resources (admin)')
    .exitOverride()
    .action(() => run((s) => hypervisorList(s)));
  program
    .command('host')
    .description('compute hosts: operator actions')
    .exitOverride()
    .command('evacuate')
    .description("rebuild every server of a lost host on other hosts (admin; the host's nova-compute down)")
    .argument('<host>', 'the compute host')
    .exitOverride()
    .action((host: string) => run((s) => hostEvacuate(s, host)));
  program
    .command('audit')
    .description('leak audit: resources no live server owns (admin); exit 1 when it finds any')
    .option('--builds-in-flight', 'boots are running: do not report BUILD servers as stuck')
    .exitOverride()
    .action((options: { buildsInFlight?: boolean }) => run((s) => audit(s, options)));
  return program;
}

async function exitCodeOf(err: unknown): Promise<{ code: number; message: string }> {
  if (err instanceof UserError) return { code: err.exitCode, message: err.message };
  const { isGrpcServiceError, ServiceError } = await temporalClient();
  const { describeFailure, failureInfo } = await failureMessages();
  if (isGrpcServiceError(err) || err instanceof ServiceError) {
    return { code: EXIT.UNAVAILABLE, message: `Temporal: ${(err as Error).message}` };
  }
  const info = failureInfo(err);
  const code = info.type === 'Timeout' ? EXIT.UNAVAILABLE : EXIT.FAILED;
  return { code, message: describeFailure(info) };
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.OK;
  let session: Session | undefined;
  const program = buildProgram(async (work) => {
    session = new Session(program.opts<GlobalOptions>());
    exitCode = await work(session);
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are exit 0; anything commander refused is a usage error (it printed why).
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    const { code, message } = await exitCodeOf(err);
    note(`Error: ${message}`);
    if (process.env.BOOTFLOW_DEBUG && err instanceof Error && err.stack) note(err.stack);
    return code;
  } finally {
    await (session as Session | undefined)?.close().catch(() => undefined);
  }
  return exitCode;
}

/** Runs the client on the process's arguments and exits with its code (used by bin/bootflow too). */
export function runCli(argv: string[] = process.argv): void {
  usePrivateUmask();
  void main(argv).then((code) => {
    process.exitCode = code;
    // Output is flushed by a natural exit; a handle left open (a gRPC channel) must not keep the CLI alive.
    setTimeout(() => process.exit(code), 2_000).unref();
  });
}

if (require.main === module) runCli();
