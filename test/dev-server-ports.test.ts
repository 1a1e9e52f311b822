/**
 * Ports for a dev server started by a test or the demo: reserved ones stay held until released, so a codec
 * server that listens on port 0 in between is never handed one of them (the browser test once found its
 * own frontend port taken that way before the dev server had started).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DevServerExitedEarly,
  freePorts,
  holdPorts,
  portInUse,
  reservePorts,
  startDevServerOnFreePorts,
} from '../lib/dev-server';

function listen(port: number): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

describe('dev server ports', () => {
  test('reserved ports are distinct, held until released, and then free', async () => {
    const reserved = await reservePorts(2);
    const [a, b] = reserved.ports as [number, number];
    assert.notEqual(a, b);
    for (const port of [a, b]) {
      assert.equal(await portInUse('127.0.0.1', port), true);
      await assert.rejects(listen(port), { code: 'EADDRINUSE' });
    }
    // What a codec server on port 0 would be given while they are held: never one of them.
    const others = await Promise.all(Array.from({ length: 200 }, () => listen(0)));
    const given = new Set(others.map((server) => (server.address() as net.AddressInfo).port));
    await Promise.all(others.map(close));
    assert.equal(given.has(a) || given.has(b), false);

    await reserved.release();
    for (const port of [a, b]) await close(await listen(port));
  });

  test('ports looked up together are distinct and free', async () => {
    const ports = await freePorts(3);
    assert.equal(new Set(ports).size, 3);
    for (const port of ports) assert.equal(await portInUse('127.0.0.1', port), false);
  });

  test('holding a taken port fails with EADDRINUSE and holds nothing', async () => {
    const taken = await listen(0);
    const takenPort = (taken.address() as net.AddressInfo).port;
    const free = await reservePorts(1);
    const [freePort] = free.ports as [number];
    await free.release();
    await assert.rejects(holdPorts([freePort, takenPort]), { code: 'EADDRINUSE' });
    // The port held before the failure was let go again.
    await close(await listen(freePort));
    await close(taken);
  });

  test('a dev server that cannot bind a port it needs is started again, then says why with its log', async () => {
    // The HTTP API port it is told to use is taken on every attempt, as a port picked by another process
    // between the pick and the bind would be on one.
    const taken = await listen(0);
    const takenPort = (taken.address() as net.AddressInfo).port;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bootflow-devports-'));
    const log = path.join(dataDir, 'temporal.log');
    try {
      const started = startDevServerOnFreePorts(
        { dataDir, headless: true, output: { file: log }, extraArgs: ['--http-port', String(takenPort)] },
        2,
      );
      await assert.rejects(started, (err: unknown) => {
        assert.ok(err instanceof DevServerExitedEarly);
        assert.match(err.message, /exited early/);
        assert.match(err.message, /its log ends:\n/);
        return true;
      });
      // Each attempt appended its own failure to the log: two attempts, two bind errors.
      const binds = readFileSync(log, 'utf8').match(/address already in use/g) ?? [];
      assert.equal(binds.length, 2, readFileSync(log, 'utf8'));
    } finally {
      await close(taken);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
