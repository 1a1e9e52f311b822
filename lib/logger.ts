/**
 * One pino logger for the whole project, and the bridge that sends Temporal's SDK and Core logs into it.
 * Secrets are redacted by path so that a password or token passed in a log field never reaches the output.
 */
import pino, { type Logger as PinoLogger, type LoggerOptions } from 'pino';
import {
  DefaultLogger,
  Runtime,
  makeTelemetryFilterString,
  type LogEntry,
  type LogLevel,
} from '@temporalio/worker';

export const REDACT_PATHS = [
  'password',
  '*.password',
  'token',
  '*.token',
  'authToken',
  '*.authToken',
  'secret',
  '*.secret',
  'key',
  '*.key',
  'apiKey',
  '*.apiKey',
  'credentials',
  '*.credentials',
  'headers.authorization',
  '*.headers.authorization',
  // Issue 6 review: pino wildcards match one level only, so the usual nestings are listed too.
  '*.*.password',
  '*.*.token',
  '*.*.secret',
  'adminPass', // Nova's generated server password, in create requests and responses
  '*.adminPass',
  '*.*.adminPass',
  'passphrase',
  '*.passphrase',
  'accessToken',
  '*.accessToken',
  'refreshToken',
  '*.refreshToken',
  'bearerToken',
  '*.bearerToken',
  'clientSecret',
  '*.clientSecret',
  'privateKey',
  '*.privateKey',
  'encryptionKey',
  '*.encryptionKey',
  'codecKeys',
  '*.codecKeys',
  'authorization',
  '*.authorization',
  'headers.cookie',
  '*.headers.cookie',
  'headers["x-auth-token"]', // OpenStack's token headers
  '*.headers["x-auth-token"]',
  'headers["x-subject-token"]',
  '*.headers["x-subject-token"]',
  'auth.identity.token.id', // Keystone token-method auth body
  '*.auth.identity.token.id',
  'grant', // a workflow's operation grant (auth.grant), good for its workflow until it expires
  '*.grant',
  'BOOTFLOW_CODEC_KEYS',
  '*.BOOTFLOW_CODEC_KEYS',
  'BOOTFLOW_CODEC_TOKEN',
  '*.BOOTFLOW_CODEC_TOKEN',
  'TEMPORAL_API_KEY',
  '*.TEMPORAL_API_KEY',
];

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
type PinoLevel = (typeof LEVELS)[number];

export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): PinoLevel {
  const wanted = (env.LOG_LEVEL ?? 'info').toLowerCase();
  return (LEVELS as readonly string[]).includes(wanted) ? (wanted as PinoLevel) : 'info';
}

function wantsPretty(env: NodeJS.ProcessEnv): boolean {
  if (env.LOG_FORMAT === 'json') return false;
  if (env.LOG_FORMAT === 'pretty') return true;
  return Boolean(process.stderr.isTTY) && env.NODE_ENV !== 'production';
}

function prettyAvailable(): boolean {
  try {
    require.resolve('pino-pretty');
    return true;
  } catch {
    return false;
  }
}

export function createLogger(
  options: { name?: string; env?: NodeJS.ProcessEnv; destination?: pino.DestinationStream } = {},
): PinoLogger {
  const env = options.env ?? process.env;
  const base: LoggerOptions = {
    name: options.name ?? 'bootflow',
    level: logLevelFromEnv(env),
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
  };
  if (options.destination) return pino(base, options.destination);
  // pino-pretty is a development dependency: pretty output for a person at a terminal, JSON otherwise.
  if (wantsPretty(env) && prettyAvailable()) {
    return pino({
      ...base,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  return pino(base, pino.destination(2));
}

export const logger = createLogger();

const TEMPORAL_TO_PINO: Record<LogLevel, Exclude<PinoLevel, 'silent' | 'fatal'>> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

function pinoToTemporal(level: PinoLevel): LogLevel {
  switch (level) {
    case 'trace':
      return 'TRACE';
    case 'debug':
      return 'DEBUG';
    case 'info':
      return 'INFO';
    case 'warn':
      return 'WARN';
    default:
      return 'ERROR';
  }
}

const MAX_SCRUB_DEPTH = 12;

/**
 * The SDK's trace lines carry whole activations and completions, whose payloads are workflow inputs and
 * activity results (tokens, credentials) already decoded. Payload bodies and raw bytes never reach a log:
 * they become a short marker, the rest of the structure is kept.
 */
export function scrubPayloads(value: unknown, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return `[${value.byteLength} bytes]`;
  if (depth >= MAX_SCRUB_DEPTH) return '[nested]';
  if (Array.isArray(value)) return value.map((item) => scrubPayloads(item, depth + 1));
  const record = value as Record<string, unknown>;
  if ('data' in record && 'metadata' in record) return '[payload]';
  // Errors keep their own serializer; dates and collections hold no payloads.
  if (value instanceof Error || value instanceof Date || value instanceof Map || value instanceof Set)
    return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(record)) out[key] = scrubPayloads(item, depth + 1);
  return out;
}

/** A Temporal logger that writes every SDK, workflow, activity and Core entry to pino, fields kept. */
export function temporalLoggerFor(target: PinoLogger): DefaultLogger {
  const level = pinoToTemporal(target.level as PinoLevel);
  return new DefaultLogger(level, (entry: LogEntry) => {
    const { meta, message } = entry;
    target[TEMPORAL_TO_PINO[entry.level]](scrubPayloads({ ...meta }) as Record<string, unknown>, message);
  });
}

let runtimeInstalled = false;

/** Installs the Temporal Runtime once per process, with Core's own logs forwarded to pino. */
export function installTemporalRuntime(target: PinoLogger = logger): void {
  if (runtimeInstalled) return;
  const level = pinoToTemporal(target.level as PinoLevel);
  Runtime.install({
    logger: temporalLoggerFor(target),
    telemetryOptions: {
      logging: {
        filter: makeTelemetryFilterString({ core: level === 'TRACE' ? 'DEBUG' : level }),
        forward: {},
      },
    },
  });
  runtimeInstalled = true;
}
