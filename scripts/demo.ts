/**
 * `npm start`: the embedded Temporal dev server with its Web UI, persisted under the data directory.
 * The boot demo (cloud bootstrap, workers, one server booted through client.ts) builds on this.
 */
import path from 'node:path';
import { startDevServer } from '../lib/dev-server';
import { logger } from '../lib/logger';

async function main(): Promise<void> {
  const dataDir = path.resolve(process.env.BOOTFLOW_DATA ?? 'data');
  const server = await startDevServer({
    dataDir,
    port: Number(process.env.TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.TEMPORAL_UI_PORT ?? 8233),
  });
  logger.info(
    { address: server.address, webUi: server.uiUrl, dataDir },
    'Temporal dev server running; Ctrl-C stops it',
  );
  const stop = () => {
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  logger.error({ err }, 'demo failed');
  process.exit(1);
});
