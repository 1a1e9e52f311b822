/**
 * Starts the Temporal dev server (the `temporal` CLI: frontend + Web UI) as a child process, persisted to a
 * SQLite file, for the demo and the end-to-end and browser tests. Time-skipping tests use @temporalio/testing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { ensurePrivateDir, usePrivateUmask } from './file-modes';
import net from 'node:net';
import path from 'node:path';
import { pollUntil } from './poll';
import { resolveTemporalBinary } from './temporal-binaries';

export type SearchAttributeType = 'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList';

export interface DevServerOptions {
  dataDir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  searchAttributes?: Record<string, SearchAttributeType>;
  /** The codec server the Web UI calls to show decrypted payloads (`--ui-codec-endpoint`). */
  uiCodecEndpoint?: string;
  /** No Web UI at all (`--headless`). */
  headless?: boolean;
  /** Where the server's own output goes: the parent's stderr (default), a log file, or nowhere. */
  output?: 'inherit' | 'ignore' | { file: string };
  /** The server's log level (default warn). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  extraArgs?: string[];
}

export interface RunningDevServer {
  address: string;
  /** The Web UI's URL; empty for a headless server (it has none). */
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface PortReservation {
  ports: number[];
  /** Closes the listeners: call it right before the process that binds the ports starts. */
  release(): Promise<void>;
}

/**
 * Ports held open (listened on) until released; 0 lets the OS pick one. A port that is only looked up and
 * closed again can be handed straight back to the next `listen(0)` (a codec server started in between, say)
 * and the dev server then finds it taken; a held one cannot. Rejects with EADDRINUSE if one is taken.
 */
export async function holdPorts(ports: number[], host = '127.0.0.1'): Promise<PortReservation> {
  const servers: net.Server[] = [];
  const release = () =>
    Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve())))).then(
      () => undefined,
    );
  try {
    for (const port of ports) {
      const server = net.createServer();
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => resolve());
      });
      servers.push(server);
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { ports: servers.map((server) => (server.address() as net.AddressInfo).port), release };
}

/** `count` ports the OS picks, held until released (see holdPorts). */
export function reservePorts(count: number, host = '127.0.0.1'): Promise<PortReservation> {
  return holdPorts(new Array<number>(count).fill(0), host);
}

/**
 * `count` distinct ports that are free on `host` right now (the OS picks them), for a process started next:
 * looked up together, since two lookups one after the other may give the same port.
 */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const reservation = await reservePorts(count, host);
  await reservation.release();
  return reservation.ports;
}

/** A port that is free on `host` right now (the OS picks it), for tests that must not clash with a demo. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(1, host);
  return port as number;
}

/** Whether a port on host is already taken (something answers a connect). */
export function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.end();
      resolve(true);
    });
    socket.on('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** How the dev server's SQLite store runs (see devServerArgs). */
export const DEV_SERVER_SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=normal'] as const;

/**
 * Dynamic config the dev server starts with (see devServerArgs). The history service reads each shard's
 * transfer queue (the tasks that hand a workflow or activity task to matching) at most
 * `history.transferProcessorMaxPollRPS` times a second, 20 by default: a task written while the reader
 * waits out its rate limit sits there up to 50 ms, and a boot hands over ~35 tasks one after another. The
 * server's own metrics showed it (transfer-queue load latency 27-29 ms against 4-5 ms to match a task).
 * 1000 takes the wait away for a little more server CPU; docs/benchmarks.md has the figures.
 */
export const DEV_SERVER_DYNAMIC_CONFIG = { 'history.transferProcessorMaxPollRPS': 1000 } as const;

function devServerArgs(options: DevServerOptions, ip: string, port: number, uiPort: number): string[] {
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--db-filename',
    path.join(options.dataDir, 'temporal.db'),
    '--namespace',
    options.namespace ?? 'default',
    '--log-level',
    options.logLevel ?? 'warn',
    // SQLite's default rollback journal syncs the disk on every commit: the dev server then waits on its
    // disk, not its CPU (6.8 ms per commit here against 0.03 ms, ~5x the boots/s). WAL with
    // synchronous=normal survives any process crash (kill -9 included); only a power failure or kernel
    // crash can lose the last commits, which a dev server may.
    ...DEV_SERVER_SQLITE_PRAGMAS.flatMap((pragma) => ['--sqlite-pragma', pragma]),
    ...Object.entries(DEV_SERVER_DYNAMIC_CONFIG).flatMap(([key, value]) => [
      '--dynamic-config-value',
      `${key}=${JSON.stringify(value)}`,
    ]),
  ];
  if (options.headless) args.push('--headless');
  else args.push('--ui-port', String(uiPort), '--ui-disable-news-fetch');
  if (options.uiCodecEndpoint) args.push('--ui-codec-endpoint', options.uiCodecEndpoint);
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  args.push(...(options.extraArgs ?? []));
  return args;
}

/** The dev server's process ended before it listened: most often a port it needs was taken meanwhile. */
export class DevServerExitedEarly extends Error {
  override name = 'DevServerExitedEarly';
}

function lastLines(file: string, count: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-count).join('\n');
  } catch {
    return '';
  }
}

/**
 * A dev server on ports the OS picks. The ports are free when picked but not held once the server starts
 * (it must bind them itself), and the server picks its own HTTP and metrics ports the same way: another
 * process, or the server itself, can take one in between and the server exits at once. Then it is started
 * again on other ports, up to `attempts` times. A headless server gets no Web UI port (`--headless` binds none).
 */
export async function startDevServerOnFreePorts(
  options: Omit<DevServerOptions, 'port' | 'uiPort'>,
  attempts = 3,
): Promise<RunningDevServer> {
  for (let attempt = 1; ; attempt++) {
    const [port, uiPort] = (await freePorts(options.headless ? 1 : 2, options.ip)) as [number, number?];
    try {
      return await startDevServer({ ...options, port, ...(uiPort === undefined ? {} : { uiPort }) });
    } catch (err) {
      if (!(err instanceof DevServerExitedEarly) || attempt >= attempts) throw err;
    }
  }
}

export async function startDevServer(options: DevServerOptions): Promise<RunningDevServer> {
  const resolved = resolveTemporalBinary('cli');
  if (resolved.source === 'download') throw new Error(resolved.reason);
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port ?? 7233;
  const uiPort = options.uiPort ?? 8233;
  // temporal.db holds every history (encrypted payloads, but ids, names and search attributes in clear).
  usePrivateUmask();
  ensurePrivateDir(options.dataDir);
  // Checked first: the CLI would otherwise fail with a bind error deep in its own log.
  for (const [what, p] of [
    ['frontend', port],
    ['Web UI', uiPort],
  ] as const) {
    if (what === 'Web UI' && options.headless) continue;
    if (await portInUse(ip, p)) {
      throw new Error(
        `port ${p} on ${ip} (Temporal ${what}) is already in use: stop what runs there, pick other ports ` +
          `(TEMPORAL_PORT, TEMPORAL_UI_PORT) or point TEMPORAL_ADDRESS at that server`,
      );
    }
  }
  const output = options.output ?? 'inherit';
  const logFd = typeof output === 'object' ? openSync(output.file, 'a') : undefined;
  const child = spawn(resolved.path, devServerArgs(options, ip, port, uiPort), {
    stdio: ['ignore', logFd ?? output, logFd ?? output] as [
      'ignore',
      number | 'inherit' | 'ignore',
      number | 'inherit' | 'ignore',
    ],
  });
  if (logFd !== undefined) closeSync(logFd);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = async (p: number): Promise<true | undefined> => {
    if (child.exitCode !== null || child.signalCode !== null) {
      const logTail = typeof output === 'object' ? lastLines(output.file, 5) : '';
      throw new DevServerExitedEarly(
        `temporal server start-dev exited early (is port ${options.headless ? port : `${port} or ${uiPort}`} taken?)` +
          (logTail ? `; its log ends:\n${logTail}` : ''),
      );
    }
    return (await portInUse(ip, p)) || undefined;
  };
  await pollUntil(() => listening(port), {
    timeoutMs: 60_000,
    intervalMs: 200,
    what: `the Temporal frontend on ${ip}:${port}`,
  });
  if (!options.headless) {
    await pollUntil(() => listening(uiPort), {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: `the Temporal Web UI on ${ip}:${uiPort}`,
    });
  }
  return {
    address: `${ip}:${port}`,
    uiUrl: options.headless ? '' : `http://${ip === '0.0.0.0' ? 'localhost' : ip}:${uiPort}`,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** The Web UI page of one workflow execution. */
export function workflowUiLink(uiUrl: string, workflowId: string, namespace = 'default'): string {
  return `${uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
