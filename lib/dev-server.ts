/**
 * Starts the Temporal dev server (the `temporal` CLI: frontend + Web UI) as a child process, persisted to a
 * SQLite file, for the demo and the end-to-end runs. Tests use @temporalio/testing's environments instead.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { resolveTemporalBinary } from './temporal-binaries';

export interface DevServerOptions {
  dataDir: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  namespace?: string;
  searchAttributes?: Record<
    string,
    'Keyword' | 'Text' | 'Int' | 'Double' | 'Bool' | 'Datetime' | 'KeywordList'
  >;
  extraArgs?: string[];
}

export interface RunningDevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

function waitForPort(host: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect({ host, port }, () => {
        socket.end();
        resolve();
      });
      socket.on('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`Temporal dev server did not open ${host}:${port}`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

export async function startDevServer(options: DevServerOptions): Promise<RunningDevServer> {
  const resolved = resolveTemporalBinary('cli');
  if (resolved.source === 'download') throw new Error(resolved.reason);
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port ?? 7233;
  const uiPort = options.uiPort ?? 8233;
  mkdirSync(options.dataDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    '--db-filename',
    path.join(options.dataDir, 'temporal.db'),
    '--namespace',
    options.namespace ?? 'default',
    '--log-level',
    'warn',
  ];
  for (const [name, type] of Object.entries(options.searchAttributes ?? {})) {
    args.push('--search-attribute', `${name}=${type}`);
  }
  args.push(...(options.extraArgs ?? []));
  const child = spawn(resolved.path, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await Promise.race([
    waitForPort(ip, port, 30_000),
    exited.then(() => {
      throw new Error(`temporal server start-dev exited early (is port ${port} taken?)`);
    }),
  ]);
  return {
    address: `${ip}:${port}`,
    uiUrl: `http://${ip}:${uiPort}`,
    process: child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
