/**
 * `npm run bootstrap`: seeds the embedded cloud in $BOOTFLOW_DATA (default ./data), or the databases named
 * by BOOTFLOW_DB_URL; idempotent. Prints what it made; passwords stay in the openrc files (mode 600).
 */
import { openCloud } from '../cloud';
import { bootstrapCloud } from '../cloud/bootstrap';
import { dbConfigFromEnv } from '../cloud/db';
import { logger } from '../lib/logger';

async function main(): Promise<void> {
  const cloud = await openCloud({ db: dbConfigFromEnv() });
  try {
    const seeded = await bootstrapCloud(cloud);
    logger.info(
      {
        dataDir: cloud.dataDir,
        openrc: [seeded.admin.openrcPath, seeded.demo.openrcPath],
        imageId: seeded.imageId,
        privateNetworkId: seeded.privateNetworkId,
        publicNetworkId: seeded.publicNetworkId,
        hosts: seeded.hosts.map((h) => h.host),
      },
      'cloud bootstrapped',
    );
  } finally {
    await cloud.close();
  }
}

main().catch((err: unknown) => {
  logger.error({ err }, 'bootstrap failed');
  process.exitCode = 1;
});
