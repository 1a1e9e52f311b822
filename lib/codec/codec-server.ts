/**
 * The codec server the Temporal Web UI and CLI call to show decrypted payloads (`--ui-codec-endpoint`,
 * `temporal ... --codec-endpoint`). Protocol: POST /encode and /decode (also /<namespace>/encode|decode, as the
 * CLI's endpoint templating produces) with a proto3-JSON body `{ "payloads": [{ "metadata": { k: base64 },
 * "data": base64 }] }`, answered in the same shape.
 *
 * Always authenticated: every POST needs the deployment's codec token (`$BOOTFLOW_DATA/codec-token`, mode 600,
 * made by the bootstrap), as `Authorization: Bearer <token>` (the Temporal CLI's `--codec-auth`) or as the
 * HttpOnly cookie that `GET /login?token=<token>` sets and then sends the browser on to the Web UI. The
 * cookie is how the Web UI authenticates: it cannot send a header of its own to a codec server unless it has
 * an OIDC login (`codec.passAccessToken`, HTTPS only), but it sends cookies when "Include cross-origin
 * credentials" (`codec.includeCredentials`) is on. The Origin header grants nothing: it only narrows which
 * browser pages may call (others get 403 even with a cookie), and the cookie is SameSite=Strict.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import type { Logger } from 'pino';
import { z } from 'zod';
import { logger as defaultLogger } from '../logger';
import { AesGcmPayloadCodec, PayloadDecryptionError } from './encryption-codec';
import type { Keyring } from './keyring';

export const DEFAULT_UI_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'];
const DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024;
const ROUTE = /^\/(?:([^/]+)\/)?(encode|decode)\/?$/;

export interface CodecServerOptions {
  /** The keys to encrypt and decrypt with; or pass `codec` directly. */
  keyring?: Keyring;
  codec?: PayloadCodec;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** Loopback by default: the Web UI runs in a browser on the same machine. */
  host?: string;
  /** Exact origins (scheme://host:port) allowed to call from a browser; defaults to the dev server's Web UI. */
  allowedOrigins?: readonly string[];
  /** The shared secret every POST must present (header or cookie); required, at least 32 characters. */
  bearerToken: string;
  /** Where `GET /login` sends the browser once the cookie is set (the Web UI); else it answers a short text. */
  uiUrl?: string;
  logger?: Logger;
  maxBodyBytes?: number;
}

export interface RunningCodecServer {
  /** The endpoint to give `--ui-codec-endpoint` / `--codec-endpoint`, e.g. http://127.0.0.1:8888 */
  url: string;
  port: number;
  close(): Promise<void>;
}

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'not base64');
const bodySchema = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), base64).nullish(),
      data: base64.nullish(),
    }),
  ),
});
type JsonPayload = z.infer<typeof bodySchema>['payloads'][number];

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(
      Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]),
    ),
    data: data == null ? undefined : Buffer.from(data, 'base64'),
  };
}

function toJson({ metadata, data }: Payload): { metadata: Record<string, string>; data?: string } {
  return {
    metadata: Object.fromEntries(
      Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    ...(data == null ? {} : { data: Buffer.from(data).toString('base64') }),
  };
}

export function checkOrigins(origins: readonly string[]): Set<string> {
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    const exact =
      parsed !== undefined &&
      parsed.origin === origin &&
      /^https?:$/.test(parsed.protocol) &&
      /^(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])$/.test(parsed.hostname);
    if (!exact) {
      throw new Error(
        `Codec server: '${origin}' is not an exact origin like http://localhost:8233 (no wildcards or paths)`,
      );
    }
  }
  return new Set(origins);
}

export const SESSION_COOKIE = 'bootflow_codec';
const MIN_TOKEN_LENGTH = 32;

/** Compares digests, so neither the token's content nor its length leaks through timing. */
function sameSecret(presented: string | undefined, token: string): boolean {
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(presented ?? ''), digest(token)) && presented !== undefined;
}

function bearerOf(header: string | undefined): string | undefined {
  return /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1]?.trim();
}

function cookieOf(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

/** The bearer token or the session cookie, whichever is presented, must be the deployment's token. */
function authenticated(req: http.IncomingMessage, token: string): boolean {
  const bearer = bearerOf(req.headers.authorization);
  if (bearer !== undefined) return sameSecret(bearer, token);
  return sameSecret(cookieOf(req.headers.cookie, SESSION_COOKIE), token);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      // Past the limit the rest is read and dropped, so the 413 answer still reaches the caller.
      if (size > limit) reject(new HttpError(413, `request body over ${limit} bytes`));
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startCodecServer(options: CodecServerOptions): Promise<RunningCodecServer> {
  const codec =
    options.codec ??
    (options.keyring ? new AesGcmPayloadCodec(options.keyring, { plainPayloads: 'pass' }) : undefined);
  if (!codec) throw new Error('startCodecServer needs a keyring or a codec');
  // No anonymous mode: whoever reaches the port would get every payload decrypted and an encryption oracle.
  if (typeof options.bearerToken !== 'string' || options.bearerToken.length < MIN_TOKEN_LENGTH) {
    throw new Error(
      `startCodecServer needs a bearer token of at least ${MIN_TOKEN_LENGTH} characters (the bootstrap's codec-token)`,
    );
  }
  const allowedOrigins = checkOrigins(options.allowedOrigins ?? DEFAULT_UI_ORIGINS);
  const bearerToken = options.bearerToken;
  const log = (options.logger ?? defaultLogger).child({ component: 'codec-server' });
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;

  const send = (res: http.ServerResponse, status: number, body?: unknown) => {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (body === undefined) {
      res.writeHead(status).end();
      return;
    }
    res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const origin = req.headers.origin;
    res.setHeader('Vary', 'Origin');
    if (origin !== undefined) {
      // A browser page from any other origin is refused outright, not merely denied the response.
      if (!allowedOrigins.has(origin)) throw new HttpError(403, 'origin not allowed');
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    const url = new URL(req.url ?? '/', 'http://codec.invalid');
    if (url.pathname === '/login' && req.method === 'GET') {
      // A top-level navigation from the link the demo prints: the token becomes an HttpOnly cookie.
      res.setHeader('Referrer-Policy', 'no-referrer');
      if (!sameSecret(url.searchParams.get('token') ?? undefined, bearerToken)) {
        throw new HttpError(401, 'missing or wrong token');
      }
      res.setHeader(
        'Set-Cookie',
        `${SESSION_COOKIE}=${bearerToken}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${30 * 86_400}`,
      );
      if (options.uiUrl) {
        res.setHeader('Location', options.uiUrl);
        send(res, 303);
      } else send(res, 200, { authenticated: true });
      return;
    }
    const route = ROUTE.exec(url.pathname);
    if (!route) throw new HttpError(404, 'not found; use POST /encode or /decode');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      send(res, 204);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      throw new HttpError(405, 'method not allowed');
    }
    if (!authenticated(req, bearerToken)) {
      res.setHeader('WWW-Authenticate', 'Bearer');
      throw new HttpError(401, 'missing or wrong bearer token');
    }
    // JSON only: a form or text/plain POST (which skips the CORS preflight) is not accepted.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      throw new HttpError(415, 'Content-Type must be application/json');
    }
    let parsed: z.infer<typeof bodySchema>;
    try {
      parsed = bodySchema.parse(JSON.parse((await readBody(req, maxBodyBytes)).toString('utf8')));
    } catch (err) {
      if (err instanceof HttpError) throw err;
      throw new HttpError(
        400,
        'body must be JSON { "payloads": [{ "metadata": {...}, "data": "<base64>" }] }',
      );
    }
    const operation = route[2] as 'encode' | 'decode';
    const namespace = route[1] ?? req.headers['x-namespace'];
    const payloads = await codec[operation](parsed.payloads.map(fromJson));
    log.debug({ operation, namespace, count: payloads.length }, 'codec request');
    send(res, 200, { payloads: payloads.map(toJson) });
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (err instanceof PayloadDecryptionError) {
        // The message names the key id only; it carries neither keys nor payload content.
        log.warn({ error: err.message }, 'codec server could not decrypt a payload');
        send(res, 400, { error: err.message });
      } else if (err instanceof HttpError) {
        send(res, err.status, { error: err.message });
      } else {
        log.error({ error: err instanceof Error ? err.message : String(err) }, 'codec server failed');
        send(res, 500, { error: 'internal error' });
      }
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  log.info({ url, allowedOrigins: [...allowedOrigins], authRequired: true }, 'codec server listening');
  return {
    url,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
