/**
 * A small QMP client (QEMU's JSON-lines monitor protocol) over the guest's unix socket: one connection per
 * command (greeting, `qmp_capabilities`, the command), events skipped. QEMU serves one QMP client at a
 * time, so nothing holds the connection: a slow guest operation is awaited by watching the process.
 *
 * A unix socket path is limited to 107 bytes; a deep instance directory is reached through
 * `/proc/self/fd/<directory fd>/qmp.sock`, which is always short.
 */
import { open } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { CloudError } from '../errors';

const MAX_SOCKET_PATH = 100;
const DEFAULT_TIMEOUT_MS = 5_000;

export interface QmpStatus {
  status: string;
  running: boolean;
}

export class QmpError extends Error {
  constructor(
    message: string,
    readonly errorClass?: string,
  ) {
    super(message);
    this.name = 'QmpError';
  }
}

/** Runs one QMP command on the socket and returns its `return` value. */
export async function qmpCommand<T = unknown>(
  socketPath: string,
  command: string,
  args?: Record<string, unknown>,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<T> {
  if (socketPath.length <= MAX_SOCKET_PATH) return exchange<T>(socketPath, command, args, timeoutMs);
  const dir = await open(path.dirname(socketPath), 'r');
  try {
    return await exchange<T>(
      `/proc/self/fd/${dir.fd}/${path.basename(socketPath)}`,
      command,
      args,
      timeoutMs,
    );
  } finally {
    await dir.close();
  }
}

function exchange<T>(
  socketPath: string,
  command: string,
  args: Record<string, unknown> | undefined,
  timeoutMs: number,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const socket = net.connect({ path: socketPath });
    let buffered = '';
    let stage: 'greeting' | 'capabilities' | 'command' = 'greeting';
    const finish = (err: Error | undefined, value?: T): void => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(
      () => finish(new QmpError(`QMP ${command} got no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const send = (execute: string, commandArgs?: Record<string, unknown>): void => {
      socket.write(`${JSON.stringify(commandArgs ? { execute, arguments: commandArgs } : { execute })}\n`);
    };
    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(new QmpError(`QMP socket ${socketPath}: ${err.message}`)));
    socket.on('close', () => finish(new QmpError(`QMP connection closed before ${command} answered`)));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (!line) continue;
        let message: {
          QMP?: unknown;
          event?: string;
          return?: unknown;
          error?: { class: string; desc: string };
        };
        try {
          message = JSON.parse(line) as typeof message;
        } catch {
          finish(new QmpError(`QMP sent a line that is not JSON: ${line.slice(0, 80)}`));
          return;
        }
        if (message.event) continue;
        if (message.error) {
          finish(new QmpError(`QMP ${command}: ${message.error.desc}`, message.error.class));
          return;
        }
        if (stage === 'greeting' && message.QMP) {
          stage = 'capabilities';
          send('qmp_capabilities');
        } else if (stage === 'capabilities' && 'return' in message) {
          stage = 'command';
          send(command, args);
        } else if (stage === 'command' && 'return' in message) {
          finish(undefined, message.return as T);
        }
      }
    });
  });
}

export async function queryStatus(socketPath: string, timeoutMs?: number): Promise<QmpStatus> {
  const status = await qmpCommand<{ status: string; running: boolean }>(
    socketPath,
    'query-status',
    undefined,
    timeoutMs,
  );
  if (typeof status?.status !== 'string')
    throw new CloudError('ServiceUnavailable', 'QMP query-status answered without a status');
  return { status: status.status, running: status.running === true };
}
