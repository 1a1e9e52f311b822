/**
 * Runs the codec server on its own, for a Web UI or CLI pointed at histories that bootflow encrypted:
 *   tsx scripts/codec-server.ts --port 8888
 *   temporal server start-dev --ui-codec-endpoint http://127.0.0.1:8888   (or the UI's Settings > Codec Server)
 *   temporal workflow show -w <id> --codec-endpoint http://127.0.0.1:8888 [--codec-auth "Bearer <token>"]
 * Keys come from BOOTFLOW_CODEC_KEYS or $BOOTFLOW_DATA/codec-keys.json; the bearer token, always required, from
 * BOOTFLOW_CODEC_TOKEN or $BOOTFLOW_DATA/codec-token (never the command line, where `ps` would show it). A
 * browser logs in once at /login?token=<token> (an HttpOnly cookie; the Web UI's codec setting "Include
 * cross-origin credentials" sends it).
 */
import { Command } from 'commander';
import { DEFAULT_UI_ORIGINS, loadCodecToken, loadKeyring, startCodecServer } from '../lib/codec';
import { usePrivateUmask } from '../lib/file-modes';
import { logger } from '../lib/logger';

async function main(): Promise<void> {
  usePrivateUmask();
  const options = new Command('codec-server')
    .description('Temporal codec server (POST /encode, /decode) for bootflow payload encryption')
    .option('--port <port>', 'port to listen on', process.env.BOOTFLOW_CODEC_PORT ?? '8888')
    .option('--host <host>', 'address to bind', process.env.BOOTFLOW_CODEC_HOST ?? '127.0.0.1')
    .option(
      '--origins <list>',
      'comma-separated browser origins allowed (the Web UI)',
      process.env.BOOTFLOW_CODEC_ORIGINS ?? DEFAULT_UI_ORIGINS.join(','),
    )
    .option('--data-dir <dir>', 'data directory holding codec-keys.json', process.env.BOOTFLOW_DATA ?? 'data')
    .parse()
    .opts<{ port: string; host: string; origins: string; dataDir: string }>();

  const keyring = loadKeyring({ dataDir: options.dataDir });
  const server = await startCodecServer({
    keyring,
    port: Number(options.port),
    host: options.host,
    allowedOrigins: options.origins
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    bearerToken: loadCodecToken(options.dataDir),
  });
  logger.info({ keyIds: keyring.ids, endpoint: server.url }, 'codec server ready; Ctrl-C stops it');
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  logger.error({ error: err instanceof Error ? err.message : String(err) }, 'codec server failed to start');
  process.exit(1);
});
