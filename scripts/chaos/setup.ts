/**
 * The cloud the chaos run boots into: the DevStack-style bootstrap (demo and admin, flavors, cirros, the
 * private and public networks), then what the failing requests need: a project with a tiny quota, a
 * network whose only subnet is already full, and an image whose stored data no longer matches its hashes.
 * The demo project gets unlimited quota so that only capacity and chaos limit the ordinary boots.
 */
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { readOpenrc, type GuestImageFiles } from '../../cloud/bootstrap';
import { isCloudError } from '../../cloud/errors';
import { generateQcow2Image } from '../../cloud/glance';
import { openCloud, type Cloud } from '../../cloud/index';
import { Keystone } from '../../cloud/keystone';
import { prepareDataDir } from '../bootstrap';

export const QUOTA_PROJECT = 'chaos-quota';
export const FULL_NETWORK = 'chaos-full';
export const CORRUPT_IMAGE = 'chaos-corrupt';

export interface ChaosFixtures {
  dataDir: string;
  demoProjectId: string;
  imageId: string;
  corruptImageId: string;
  privateNetworkId: string;
  fullNetworkId: string;
  publicNetworkId: string;
  /** Keystone tokens (1 h): the demo user's and the tiny-quota project's member's. */
  demoToken: string;
  quotaToken: string;
  /** Keystone's operation grant for one workflow, from one of those tokens (what a workflow carries). */
  grant(token: string, workflowType: string, workflowId: string): Promise<{ grant: string }>;
  /** Closes the Keystone that grants come from. */
  close(): Promise<void>;
}

const ADMIN_CTX = (projectId: string) => ({ projectId, roles: ['admin', 'member', 'reader'] });

async function quotaProjectToken(cloud: Cloud): Promise<string> {
  const password = randomBytes(18).toString('base64url');
  await cloud.keystone.ensureProject({ name: QUOTA_PROJECT });
  await cloud.keystone.ensureUser({ name: QUOTA_PROJECT, password });
  await cloud.keystone.setUserPassword({ user: QUOTA_PROJECT, password });
  await cloud.keystone.assignRole({ user: QUOTA_PROJECT, project: QUOTA_PROJECT, role: 'member' });
  const auth = await cloud.keystone.authenticate({
    username: QUOTA_PROJECT,
    password,
    projectName: QUOTA_PROJECT,
  });
  // One m1.tiny at most: every m1.small asked for is over quota (403), before any server exists.
  await cloud.nova.setQuotaLimits(auth.context.projectId, { instances: 1, cores: 1, ram: 512 });
  return auth.token;
}

/** A /29 whose five usable addresses are all taken by ports no server owns: routers' interfaces. */
async function fullNetwork(cloud: Cloud, projectId: string): Promise<string> {
  const network = await cloud.neutron.createNetwork({
    name: FULL_NETWORK,
    projectId,
    requestKey: 'chaos:network:full',
  });
  await cloud.neutron.createSubnet({
    networkId: network.id,
    cidr: '10.99.0.0/29',
    name: `${FULL_NETWORK}-subnet`,
    requestKey: 'chaos:subnet:full',
  });
  for (let i = 0; ; i++) {
    try {
      const port = await cloud.neutron.createPort({
        requestKey: `chaos:filler:${i}`,
        networkId: network.id,
        projectId,
      });
      // A real router's interface (one router per port: Neutron refuses two on one subnet), so the audit
      // finds an owner behind each filler port.
      const router = await cloud.neutron.l3.createRouter({ name: `${FULL_NETWORK}-router-${i}`, projectId });
      await cloud.neutron.l3.addInterface(router.id, { portId: port.id });
    } catch (err) {
      if (isCloudError(err, 'IpAddressGenerationFailure')) break;
      throw err;
    }
    if (i > 64) throw new Error(`${FULL_NETWORK} never filled up`);
  }
  return network.id;
}

/** An active image whose file in the store was damaged after upload (same size, different bytes). */
async function corruptImage(cloud: Cloud, adminProjectId: string, dataDir: string): Promise<string> {
  const ctx = ADMIN_CTX(adminProjectId);
  const image = await cloud.glance.createImage(
    {
      name: CORRUPT_IMAGE,
      diskFormat: 'qcow2',
      containerFormat: 'bare',
      visibility: 'public',
      ownerProjectId: adminProjectId,
      minDisk: 1,
      minRam: 0,
      properties: { hw_architecture: 'x86_64' },
    },
    ctx,
  );
  await cloud.glance.uploadImageData(image.id, generateQcow2Image({ seed: CORRUPT_IMAGE }), { ctx });
  await scribble(path.join(dataDir, 'images', image.id));
  return image.id;
}

/** Overwrites 4 KiB in the middle of a file with random bytes: same size, different content. */
export async function scribble(file: string): Promise<void> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    const junk = randomBytes(Math.min(4096, size));
    await handle.write(junk, 0, junk.length, Math.max(0, Math.floor(size / 2) - junk.length));
  } finally {
    await handle.close();
  }
}

/** With `guestImage` (the real-guest preset) the ordinary boots use the bootflow guest (an AMI), not cirros. */
export async function prepareChaosCloud(
  dataDir: string,
  options: { guestImage?: GuestImageFiles } = {},
): Promise<ChaosFixtures> {
  const prepared = await prepareDataDir(
    dataDir,
    {},
    options.guestImage ? { guestImage: options.guestImage } : {},
  );
  const cloud = await openCloud({ db: { dataDir: prepared.dataDir } });
  let keystone: Promise<Keystone> | undefined;
  try {
    const demo = readOpenrc(prepared.cloud.demo.openrcPath);
    const demoAuth = await cloud.keystone.authenticate({
      username: demo.username ?? 'demo',
      password: demo.password ?? '',
      projectName: demo.projectName ?? 'demo',
    });
    const demoProjectId = prepared.cloud.demo.projectId;
    await cloud.nova.setQuotaLimits(demoProjectId, {
      instances: -1,
      cores: -1,
      ram: -1,
      volumes: -1,
      gigabytes: -1,
      ports: -1,
    });
    return {
      dataDir: prepared.dataDir,
      demoProjectId,
      imageId: (options.guestImage ? prepared.cloud.guestImageId : null) ?? prepared.cloud.imageId,
      corruptImageId: await corruptImage(cloud, prepared.cloud.admin.projectId, prepared.dataDir),
      privateNetworkId: prepared.cloud.privateNetworkId,
      fullNetworkId: await fullNetwork(cloud, demoProjectId),
      publicNetworkId: prepared.cloud.publicNetworkId,
      demoToken: demoAuth.token,
      quotaToken: await quotaProjectToken(cloud),
      grant: async (token, workflowType, workflowId) => {
        keystone ??= Keystone.open({ db: { dataDir: prepared.dataDir } });
        const { grant } = await (await keystone).issueGrant(token, { workflowType, workflowId });
        return { grant };
      },
      close: async () => {
        await (await keystone)?.close();
      },
    };
  } finally {
    await cloud.close();
  }
}
