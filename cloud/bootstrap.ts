/**
 * Seeds a usable cloud, idempotently (like DevStack's stack.sh): domain, projects, roles, users with
 * generated passwords written to admin-openrc.sh / demo-openrc.sh (mode 600), flavors, a small real image,
 * a tenant network and a shared public one, and optionally the compute hosts' records.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import type { Cloud } from './index';
import { generateQcow2Image, type Image } from './glance';
import { DEFAULT_HOSTS, registerComputeHost, type HostSpec } from './hosts';

export const IMAGE_NAME = 'cirros';
/** The real guest (qemu driver): an AMI whose kernel_id / ramdisk_id point at the AKI and ARI below. */
export const GUEST_IMAGE_NAME = 'bootflow-guest';
export const GUEST_KERNEL_NAME = 'bootflow-guest-kernel';
export const GUEST_RAMDISK_NAME = 'bootflow-guest-ramdisk';

/** The guest image's files on this machine (lib/guest-image builds them). */
export interface GuestImageFiles {
  /** Identifies the build (kernel package and scripts): a new build registers new images. */
  build: string;
  kernelPath: string;
  ramdiskPath: string;
  diskPath: string;
}
export const PRIVATE_NETWORK = { name: 'private', cidr: '10.0.0.0/24' } as const;
export const PUBLIC_NETWORK = { name: 'public', cidr: '172.24.4.0/24' } as const;

export interface OpenrcCredentials {
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
}

export interface BootstrapResult {
  admin: OpenrcCredentials & { openrcPath: string; projectId: string };
  demo: OpenrcCredentials & { openrcPath: string; projectId: string };
  imageId: string;
  /** The AMI of the real guest, when the guest image was given. */
  guestImageId: string | null;
  privateNetworkId: string;
  publicNetworkId: string;
  hosts: Array<{ host: string; nodeUuid: string }>;
}

export interface BootstrapOptions {
  /** Compute hosts to register now; a compute worker also registers its host when it starts. */
  hosts?: readonly HostSpec[];
  /** The API role's public base URL, which every catalog endpoint hangs off (default DEFAULT_PUBLIC_URL). */
  publicUrl?: string;
  /** Keystone's public endpoint for the openrc files' OS_AUTH_URL (default `<publicUrl>/identity`). */
  authUrl?: string;
  /** Registers the real guest's images (aki, ari, ami) from these files. */
  guestImage?: GuestImageFiles;
}

/** The API role's default public base URL and identity endpoint (api/settings.ts). */
export const DEFAULT_PUBLIC_URL = 'http://127.0.0.1:8770';
export const DEFAULT_AUTH_URL = `${DEFAULT_PUBLIC_URL}/identity`;
export const CATALOG_REGION = 'RegionOne';

/**
 * The services the API role serves, DevStack style (one listener, a path prefix per service), as the
 * bootstrap registers them in Keystone's catalog: clients find each service there (python-openstackclient
 * by type and interface), so these types and paths are what openstacksdk expects: `compute` at
 * /compute/v2.1, `volumev3` and `block-storage` at /volume/v3.
 */
export const CATALOG_SERVICES: ReadonlyArray<{ type: string; name: string; path: string }> = [
  { type: 'identity', name: 'keystone', path: '/identity' },
  { type: 'compute', name: 'nova', path: '/compute/v2.1' },
  { type: 'image', name: 'glance', path: '/image' },
  { type: 'network', name: 'neutron', path: '/network' },
  { type: 'volumev3', name: 'cinderv3', path: '/volume/v3' },
  { type: 'block-storage', name: 'cinder', path: '/volume/v3' },
  { type: 'placement', name: 'placement', path: '/placement' },
];

/**
 * Registers every service of CATALOG_SERVICES with its public, internal and admin endpoints under
 * `publicUrl` in RegionOne (idempotent; endpoints of an earlier public URL are moved to this one, as
 * keystone-manage bootstrap updates a changed URL).
 */
export async function ensureServiceCatalog(
  cloud: Cloud,
  publicUrl: string = DEFAULT_PUBLIC_URL,
): Promise<void> {
  const base = publicUrl.replace(/\/+$/, '');
  for (const s of CATALOG_SERVICES)
    await cloud.keystone.catalog.ensureService({
      region: CATALOG_REGION,
      type: s.type,
      name: s.name,
      url: `${base}${s.path}`,
    });
}

const OPENRC_KEYS: Record<keyof OpenrcCredentials, string> = {
  username: 'OS_USERNAME',
  password: 'OS_PASSWORD',
  projectName: 'OS_PROJECT_NAME',
  userDomainName: 'OS_USER_DOMAIN_NAME',
  projectDomainName: 'OS_PROJECT_DOMAIN_NAME',
};

export function openrcPath(dataDir: string, user: 'admin' | 'demo'): string {
  return path.join(dataDir, `${user}-openrc.sh`);
}

/** Reads a DevStack-style openrc file (`export OS_X='value'` lines). */
export function readOpenrc(file: string): Partial<OpenrcCredentials> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^export (OS_[A-Z_]+)='([^']*)'$/.exec(line.trim());
    if (match) values[match[1]!] = match[2]!;
  }
  const out: Partial<OpenrcCredentials> = {};
  for (const [field, key] of Object.entries(OPENRC_KEYS) as Array<[keyof OpenrcCredentials, string]>) {
    if (values[key] !== undefined) out[field] = values[key];
  }
  return out;
}

function writeOpenrc(file: string, creds: OpenrcCredentials, authUrl: string): void {
  const lines = [
    '# bootflow credentials, DevStack style: source this file, then use `openstack` or the client.',
    `export OS_AUTH_URL='${authUrl}'`,
    ...Object.entries(OPENRC_KEYS).map(
      ([field, key]) => `export ${key}='${creds[field as keyof OpenrcCredentials]}'`,
    ),
    "export OS_IDENTITY_API_VERSION='3'",
    "export OS_REGION_NAME='RegionOne'",
    "export OS_INTERFACE='public'",
    '',
  ];
  writeFileSync(file, lines.join('\n'), { mode: 0o600 });
  chmodSync(file, 0o600);
}

function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

async function ensureUserWithOpenrc(
  cloud: Cloud,
  user: 'admin' | 'demo',
  project: { id: string; name: string },
  authUrl: string,
): Promise<OpenrcCredentials & { openrcPath: string; projectId: string }> {
  const file = openrcPath(cloud.dataDir, user);
  const known = existsSync(file) ? readOpenrc(file).password : undefined;
  const password = known ?? generatePassword();
  await cloud.keystone.ensureUser({ name: user, password });
  // A fresh openrc means a fresh password: make the stored hash match what the file says.
  if (!known) await cloud.keystone.setUserPassword({ user, password });
  const creds: OpenrcCredentials = {
    username: user,
    password,
    projectName: project.name,
    userDomainName: 'Default',
    projectDomainName: 'Default',
  };
  // Rewritten every time (same password): OS_AUTH_URL follows the API role's public URL.
  writeOpenrc(file, creds, authUrl);
  return { ...creds, openrcPath: file, projectId: project.id };
}

async function ensureImage(cloud: Cloud, adminProjectId: string): Promise<Image> {
  const ctx = { projectId: adminProjectId, roles: ['admin', 'member', 'reader'] };
  // Only the admin project's own image counts: another project may have an image of the same name.
  const existing = await cloud.glance.listImages(ctx, { name: IMAGE_NAME, owner: adminProjectId });
  const active = existing.find((image) => image.status === 'active');
  if (active) return active;
  for (const stale of existing) await cloud.glance.deleteImage(stale.id, ctx);
  const image = await cloud.glance.createImage(
    {
      name: IMAGE_NAME,
      diskFormat: 'qcow2',
      containerFormat: 'bare',
      visibility: 'public',
      ownerProjectId: adminProjectId,
      minDisk: 1,
      minRam: 0,
      properties: { hw_architecture: 'x86_64', os_distro: 'cirros' },
    },
    ctx,
  );
  return cloud.glance.uploadImageData(image.id, generateQcow2Image({ seed: IMAGE_NAME }), { ctx });
}

/**
 * Registers the guest the way AMI-style images are registered in Glance (euca-bundle / glance image-create):
 * the kernel as an `aki`, the initramfs as an `ari`, then the machine image as an `ami` whose `kernel_id`
 * and `ramdisk_id` properties name them. Idempotent: a registered build is reused, an older one replaced.
 */
async function ensureGuestImage(
  cloud: Cloud,
  adminProjectId: string,
  files: GuestImageFiles,
): Promise<Image> {
  const ctx = { projectId: adminProjectId, roles: ['admin', 'member', 'reader'] };
  const existing = await cloud.glance.listImages(ctx, { name: GUEST_IMAGE_NAME, owner: adminProjectId });
  const current = existing.find(
    (image) => image.status === 'active' && image.properties.bootflow_guest_build === files.build,
  );
  if (current) return current;
  for (const stale of existing) {
    for (const part of [stale.properties.kernel_id, stale.properties.ramdisk_id])
      if (part) await cloud.glance.deleteImage(part, ctx).catch(() => undefined);
    await cloud.glance.deleteImage(stale.id, ctx);
  }
  const register = async (
    name: string,
    format: 'aki' | 'ari' | 'ami',
    file: string,
    properties: Record<string, string>,
  ): Promise<Image> => {
    const image = await cloud.glance.createImage(
      {
        name,
        diskFormat: format,
        containerFormat: format,
        visibility: 'public',
        ownerProjectId: adminProjectId,
        minDisk: 0,
        minRam: 0,
        properties: { hw_architecture: 'x86_64', bootflow_guest_build: files.build, ...properties },
      },
      ctx,
    );
    return cloud.glance.uploadImageData(image.id, createReadStream(file), { ctx });
  };
  const kernel = await register(GUEST_KERNEL_NAME, 'aki', files.kernelPath, {});
  const ramdisk = await register(GUEST_RAMDISK_NAME, 'ari', files.ramdiskPath, {});
  return register(GUEST_IMAGE_NAME, 'ami', files.diskPath, {
    kernel_id: kernel.id,
    ramdisk_id: ramdisk.id,
    os_distro: 'debian',
  });
}

export async function bootstrapCloud(cloud: Cloud, options: BootstrapOptions = {}): Promise<BootstrapResult> {
  const { keystone, nova, neutron } = cloud;
  const adminProject = await keystone.ensureProject({ name: 'admin' });
  const demoProject = await keystone.ensureProject({ name: 'demo' });
  await keystone.ensureProject({ name: 'service' });
  const publicUrl = options.publicUrl ?? DEFAULT_PUBLIC_URL;
  const authUrl = options.authUrl ?? `${publicUrl}/identity`;
  const admin = await ensureUserWithOpenrc(cloud, 'admin', adminProject, authUrl);
  const demo = await ensureUserWithOpenrc(cloud, 'demo', demoProject, authUrl);
  await keystone.assignRole({ user: 'admin', project: 'admin', role: 'admin' });
  await keystone.assignRole({ user: 'admin', project: 'demo', role: 'admin' });
  await keystone.assignRole({ user: 'demo', project: 'demo', role: 'member' });
  await ensureServiceCatalog(cloud, publicUrl);

  await nova.ensureDefaultFlavors();
  const image = await ensureImage(cloud, adminProject.id);
  const guest = options.guestImage
    ? await ensureGuestImage(cloud, adminProject.id, options.guestImage)
    : null;

  const publicNet = await neutron.createNetwork({
    name: PUBLIC_NETWORK.name,
    projectId: adminProject.id,
    shared: true,
    external: true,
    requestKey: 'bootstrap:network:public',
  });
  await neutron.createSubnet({
    networkId: publicNet.id,
    cidr: PUBLIC_NETWORK.cidr,
    name: 'public-subnet',
    requestKey: 'bootstrap:subnet:public',
  });
  const privateNet = await neutron.createNetwork({
    name: PRIVATE_NETWORK.name,
    projectId: demoProject.id,
    requestKey: 'bootstrap:network:private',
  });
  await neutron.createSubnet({
    networkId: privateNet.id,
    cidr: PRIVATE_NETWORK.cidr,
    name: 'private-subnet',
    requestKey: 'bootstrap:subnet:private',
  });
  await neutron.ensureDefaultSecurityGroup(adminProject.id);
  await neutron.ensureDefaultSecurityGroup(demoProject.id);

  const hosts = [];
  for (const spec of options.hosts ?? DEFAULT_HOSTS) hosts.push(await registerComputeHost(cloud, spec));

  return {
    admin,
    demo,
    imageId: image.id,
    guestImageId: guest?.id ?? null,
    privateNetworkId: privateNet.id,
    publicNetworkId: publicNet.id,
    hosts,
  };
}
