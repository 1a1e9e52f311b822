import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, temporalLoggerFor } from '../lib/logger';

function capture() {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { lines, destination };
}

test('passwords, tokens and keys are redacted from log lines', () => {
  const { lines, destination } = capture();
  const log = createLogger({ destination, env: { LOG_LEVEL: 'info' } });
  log.info({ password: 's3cr3t-pw', auth: { token: 'tok-123' }, key: 'k-1', user: 'demo' }, 'login');
  const out = lines.join('');
  assert.doesNotMatch(out, /s3cr3t-pw|tok-123|k-1/);
  assert.match(out, /"user":"demo"/);
  assert.match(out, /\[REDACTED\]/);
});

test('Temporal log entries reach pino with level and fields kept', () => {
  const { lines, destination } = capture();
  const log = createLogger({ destination, env: { LOG_LEVEL: 'debug' } });
  const temporalLogger = temporalLoggerFor(log);
  temporalLogger.warn('activity retried', { workflowId: 'wf-1', activityType: 'greet', attempt: 2 });
  const entry = JSON.parse(lines[0] ?? '{}') as Record<string, unknown>;
  assert.equal(entry.level, 40);
  assert.equal(entry.msg, 'activity retried');
  assert.equal(entry.workflowId, 'wf-1');
  assert.equal(entry.attempt, 2);
});

test('LOG_LEVEL sets the level', () => {
  const { lines, destination } = capture();
  const log = createLogger({ destination, env: { LOG_LEVEL: 'warn' } });
  log.info('hidden');
  log.warn('shown');
  assert.equal(lines.length, 1);
});

test('payloads in Temporal log fields (activations, completions) never reach the output', () => {
  const { lines, destination } = capture();
  const temporalLogger = temporalLoggerFor(createLogger({ destination, env: { LOG_LEVEL: 'trace' } }));
  const secret = Buffer.from(JSON.stringify({ password: 'pw-in-activation', token: 'tok-in-activation' }));
  class Activation {
    runId = 'run-1';
    jobs = [
      {
        initializeWorkflow: {
          arguments: [{ metadata: { encoding: Buffer.from('json/plain') }, data: secret }],
        },
      },
    ];
  }
  temporalLogger.trace('Got workflow activation', {
    activation: new Activation(),
    raw: new Uint8Array(secret),
  });
  const out = lines.join('');
  assert.doesNotMatch(out, /pw-in-activation|tok-in-activation/);
  assert.doesNotMatch(out, new RegExp(secret.toString('base64').slice(0, 24)));
  const entry = JSON.parse(out) as { activation: { runId: string; jobs: unknown[] }; raw: string };
  assert.equal(entry.activation.runId, 'run-1');
  assert.deepEqual(entry.activation.jobs, [{ initializeWorkflow: { arguments: ['[payload]'] } }]);
  assert.match(entry.raw, /^\[\d+ bytes\]$/);
});
