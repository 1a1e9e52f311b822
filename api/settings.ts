/**
 * Where the API role listens and the public base URL its catalog and openrc files name: flags over the
 * environment (BOOTFLOW_API_HOST, BOOTFLOW_API_PORT, BOOTFLOW_PUBLIC_URL) over the defaults. The bootstrap
 * writes `OS_AUTH_URL=<public URL>/identity` from the same settings, so the two always agree. Also the
 * create admission limit (BOOTFLOW_API_CONCURRENT_CREATES, compute/create-admission.ts).
 */
import { positiveWhole } from '../lib/command-line/numbers';
import { DEFAULT_CONCURRENT_CREATES } from './compute/create-admission';
import { DEFAULT_API_PORT } from './deps';

export interface ApiSettings {
  host: string;
  port: number;
  /** Without a trailing slash. */
  publicUrl: string;
  tls?: { certFile: string; keyFile: string };
  /**
   * POST /servers doing their own work at once (the rest wait in arrival order): a create is a few ms of CPU
   * between awaits, so fifty interleaved all answer near the end of a burst; a few at a time answer first
   * come first. Sized for the machine's cores and for whether the workers share the API's event loop.
   */
  concurrentCreates: number;
}

export const DEFAULT_API_HOST = '127.0.0.1';

export function apiSettings(
  flags: {
    host?: string;
    port?: number;
    publicUrl?: string;
    tlsCert?: string;
    tlsKey?: string;
    concurrentCreates?: number;
  } = {},
  env: NodeJS.ProcessEnv = process.env,
): ApiSettings {
  const host = flags.host ?? env.BOOTFLOW_API_HOST ?? DEFAULT_API_HOST;
  const port = flags.port ?? Number(env.BOOTFLOW_API_PORT ?? DEFAULT_API_PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`the API port must be a whole number from 0 to 65535 (got ${port})`);
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined))
    throw new Error('--tls-cert and --tls-key go together');
  const scheme = flags.tlsCert ? 'https' : 'http';
  // A wildcard listen address is not something a client can reach: the catalog then names loopback.
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const publicUrl = (
    flags.publicUrl ??
    env.BOOTFLOW_PUBLIC_URL ??
    `${scheme}://${reachable}:${port}`
  ).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(publicUrl))
    throw new Error(`the public URL must be an http(s) URL (got ${publicUrl})`);
  const concurrentCreates =
    flags.concurrentCreates ??
    (env.BOOTFLOW_API_CONCURRENT_CREATES === undefined
      ? DEFAULT_CONCURRENT_CREATES
      : positiveWhole(env.BOOTFLOW_API_CONCURRENT_CREATES, 'BOOTFLOW_API_CONCURRENT_CREATES'));
  return {
    host,
    port,
    publicUrl,
    concurrentCreates,
    ...(flags.tlsCert && flags.tlsKey ? { tls: { certFile: flags.tlsCert, keyFile: flags.tlsKey } } : {}),
  };
}

/** The openrc files' OS_AUTH_URL. */
export function identityUrl(settings: Pick<ApiSettings, 'publicUrl'>): string {
  return `${settings.publicUrl}/identity`;
}
