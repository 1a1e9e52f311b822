/**
 * Prepares a data directory the way DevStack's stack.sh prepares a node, idempotently: the payload-encryption
 * key file (0600), and the embedded cloud (projects, users with openrc files, flavors, the cirros image, the
 * private and public networks). Compute hosts are not registered here: each compute worker registers its
 * own host through Temporal when it starts. The openrc files' OS_AUTH_URL follows BOOTFLOW_PUBLIC_URL /
 * BOOTFLOW_API_PORT, as the API role does.
 *
 *   tsx scripts/bootstrap.ts [--data-dir DIR] [--guest-image]   (BOOTFLOW_DATA, BOOTFLOW_DB_URL as everywhere)
 *
 * `--guest-image` also builds the real guest (lib/guest-image) and registers it as `bootflow-guest`.
 */
import path from 'node:path';
import { bootstrapCloud, type BootstrapResult, type GuestImageFiles } from '../cloud/bootstrap';
import { dbConfigFromEnv } from '../cloud/db';
import { openCloud } from '../cloud/index';
import { DEFAULT_HOSTS } from '../cloud/hosts';
import { issueComputeServiceKeys } from '../cloud/nova';
import { ensureCodecKeyFile, ensureCodecToken, ensureKeyCheck } from '../lib/codec';
import { apiSettings, identityUrl } from '../api/settings';
import { ensureGuestImage } from '../lib/guest-image';
import { ensurePrivateDir, usePrivateUmask } from '../lib/file-modes';

export interface PreparedData {
  dataDir: string;
  codecKeyFile: string;
  codecKeyCreated: boolean;
  /** The codec server's access token (mode 600). */
  codecTokenFile: string;
  cloud: Omit<BootstrapResult, 'admin' | 'demo'> & {
    admin: { openrcPath: string; projectId: string };
    demo: { openrcPath: string; projectId: string };
  };
}

/** BOOTFLOW_COMPUTE_HOSTS (comma-separated) and --compute-host: further hosts to issue credentials to. */
function computeHostsOf(env: NodeJS.ProcessEnv): string[] {
  return (env.BOOTFLOW_COMPUTE_HOSTS ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
}

export async function prepareDataDir(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
  options: { guestImage?: GuestImageFiles } = {},
): Promise<PreparedData> {
  const dir = path.resolve(dataDir);
  // Also when another program (the demo, a test) bootstraps in its own process: the image store, databases
  // and openrc files it writes are the owner's alone.
  usePrivateUmask();
  ensurePrivateDir(dir);
  const codec = ensureCodecKeyFile(dir);
  ensureKeyCheck(dir, codec.keyring);
  const codecTokenFile = ensureCodecToken(dir);
  // nova-compute's service credentials: the seed's hosts and any named in BOOTFLOW_COMPUTE_HOSTS.
  issueComputeServiceKeys(dir, [...DEFAULT_HOSTS.map((h) => h.host), ...computeHostsOf(env)]);
  const cloud = await openCloud({ db: { ...dbConfigFromEnv(env), dataDir: dir } });
  try {
    // OS_AUTH_URL names the API role's identity endpoint, from the same settings the role reads.
    const result = await bootstrapCloud(cloud, {
      hosts: [],
      publicUrl: apiSettings({}, env).publicUrl,
      authUrl: identityUrl(apiSettings({}, env)),
      ...(options.guestImage ? { guestImage: options.guestImage } : {}),
    });
    // Only paths and ids leave this function: the passwords stay in the openrc files.
    return {
      dataDir: dir,
      codecKeyFile: codec.path,
      codecKeyCreated: codec.created,
      codecTokenFile,
      cloud: {
        admin: { openrcPath: result.admin.openrcPath, projectId: result.admin.projectId },
        demo: { openrcPath: result.demo.openrcPath, projectId: result.demo.projectId },
        imageId: result.imageId,
        guestImageId: result.guestImageId,
        privateNetworkId: result.privateNetworkId,
        publicNetworkId: result.publicNetworkId,
        hosts: result.hosts,
      },
    };
  } finally {
    await cloud.close();
  }
}

if (require.main === module) {
  usePrivateUmask();
  const flag = process.argv.indexOf('--data-dir');
  const dataDir = flag > 0 ? process.argv[flag + 1] : undefined;
  const withGuest = process.argv.includes('--guest-image');
  const hostFlag = process.argv.indexOf('--compute-host');
  if (hostFlag > 0) {
    const extra = process.argv[hostFlag + 1] ?? '';
    process.env.BOOTFLOW_COMPUTE_HOSTS = [process.env.BOOTFLOW_COMPUTE_HOSTS, extra]
      .filter(Boolean)
      .join(',');
  }
  (withGuest ? ensureGuestImage() : Promise.resolve(undefined))
    .then((guestImage) =>
      prepareDataDir(
        dataDir ?? process.env.BOOTFLOW_DATA ?? 'data',
        process.env,
        guestImage ? { guestImage } : {},
      ),
    )
    .then(
      (prepared) => process.stdout.write(`${JSON.stringify(prepared, null, 2)}\n`),
      (err: unknown) => {
        process.stderr.write(`bootstrap failed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
}
