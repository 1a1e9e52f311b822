/** The scheduling request (Nova's RequestSpec, reduced to what the filters use) and its validation. */
import { z } from 'zod';
import { CloudError } from '../errors';
import type { Resources } from '../placement';
import { idSchema, uuidSchema } from '../validation';

const size = z
  .number()
  .int()
  .min(0)
  .max(2 ** 31 - 1);

/** The flavor as Nova hands it over; fields the scheduler does not use are dropped, not rejected. */
export const flavorSchema = z.object({
  id: z.union([z.string(), z.number()]).optional(),
  name: z.string().optional(),
  vcpus: size.min(1),
  memoryMb: size.min(1),
  rootGb: size,
  ephemeralGb: size.default(0),
  swapMb: size.default(0),
});
export type SchedulerFlavor = z.input<typeof flavorSchema>;

/** The image as Glance hands it over; only its properties matter here. */
const imageSchema = z.object({ properties: z.record(z.string(), z.unknown()).default({}) });

const hostNameSchema = z.string().min(1).max(255);

export const SERVER_GROUP_POLICY_NAMES = [
  'affinity',
  'anti-affinity',
  'soft-affinity',
  'soft-anti-affinity',
] as const;
export type ServerGroupPolicyName = (typeof SERVER_GROUP_POLICY_NAMES)[number];

/** The instance's server group: its policy, one host per other member placed, and anti-affinity's rule. */
const groupSchema = z.strictObject({
  policy: z.enum(SERVER_GROUP_POLICY_NAMES),
  hosts: z.array(hostNameSchema).max(10_000),
  /** Nova's max_server_per_host rule (anti-affinity; 1 without it). */
  maxServerPerHost: z
    .number()
    .int()
    .min(1)
    .max(2 ** 31 - 1)
    .optional(),
});
export type GroupSpec = z.input<typeof groupSchema>;

export const selectRequestSchema = z.strictObject({
  instanceUuid: uuidSchema,
  projectId: idSchema,
  userId: idSchema,
  flavor: flavorSchema,
  image: imageSchema.default({ properties: {} }),
  /** The root disk is a volume: no DISK_GB for it on the host, as Nova's resources_from_request_spec. */
  bootFromVolume: z.boolean().default(false),
  availabilityZone: z.string().min(1).max(255).optional(),
  serverGroup: groupSchema.optional(),
  /**
   * The same_host / different_host hints as the hosts of the instances they name (one per placed
   * instance); a hint given is never empty here (Nova's filters pass every host for an empty one).
   */
  affinityHints: z
    .strictObject({
      sameHost: z.array(hostNameSchema).max(10_000).optional(),
      differentHost: z.array(hostNameSchema).max(10_000).optional(),
    })
    .optional(),
  excludedHosts: z.array(hostNameSchema).max(10_000).default([]),
  maxAttempts: z.number().int().min(1).max(100).default(3),
});
export type SelectDestinationsRequest = z.input<typeof selectRequestSchema>;
export type ParsedSelectRequest = z.output<typeof selectRequestSchema>;

/** Nova's resources_from_flavor: swap counts as disk, rounded up to whole GB; a volume root needs no disk. */
export function resourcesFromFlavor(
  flavor: z.output<typeof flavorSchema>,
  bootFromVolume: boolean,
): Resources {
  const disk = (bootFromVolume ? 0 : flavor.rootGb) + flavor.ephemeralGb + Math.ceil(flavor.swapMb / 1024);
  const resources: Resources = { VCPU: flavor.vcpus, MEMORY_MB: flavor.memoryMb };
  if (disk > 0) resources.DISK_GB = disk;
  return resources;
}

/** Nova's fields.Architecture: the valid names, and the aliases canonicalize() maps onto them. */
const ARCHITECTURES = new Set([
  'alpha', 'armv6', 'armv7l', 'armv7b', 'aarch64', 'cris', 'i686', 'ia64', 'lm32', 'm68k', 'microblaze',
  'microblazeel', 'mips', 'mipsel', 'mips64', 'mips64el', 'openrisc', 'parisc', 'parisc64', 'ppc', 'ppcle',
  'ppc64', 'ppc64le', 'ppcemb', 's390', 's390x', 'sh4', 'sh4eb', 'sparc', 'sparc64', 'unicore32', 'x86_64',
  'xtensa', 'xtensaeb',
]); // prettier-ignore
const ARCH_ALIASES: Record<string, string> = {
  i386: 'i686',
  i486: 'i686',
  i586: 'i686',
  x86_32: 'i686',
  x86_32p: 'i686',
  amd64: 'x86_64',
};

export function canonicalArch(name: string): string {
  const lower = name.toLowerCase();
  return ARCH_ALIASES[lower] ?? lower;
}

/** An image architecture Nova would refuse (InvalidArchitectureName) is refused here too. */
export function imageArch(name: string): string {
  const arch = canonicalArch(name);
  if (!ARCHITECTURES.has(arch)) {
    throw new CloudError('BadRequest', `Architecture name '${name}' is not valid`, { architecture: name });
  }
  return arch;
}

/** Nova's fields.HVType.canonicalize: lower case, and 'xapi' is Xen. */
export function canonicalHvType(name: string): string {
  const lower = name.toLowerCase();
  return lower === 'xapi' ? 'xen' : lower;
}

function stringProperty(properties: Record<string, unknown>, ...keys: string[]): string | undefined {
  for (const key of keys) {
    const v = properties[key];
    if (typeof v === 'string' && v.trim() !== '') return v.trim();
  }
  return undefined;
}

export interface ImageRequirements {
  arch?: string;
  hvType?: string;
}

/** hw_architecture and img_hv_type (and their legacy names architecture and hypervisor_type). */
export function imageRequirements(properties: Record<string, unknown>): ImageRequirements {
  const arch = stringProperty(properties, 'hw_architecture', 'architecture');
  const hv = stringProperty(properties, 'img_hv_type', 'hypervisor_type');
  return {
    ...(arch ? { arch: imageArch(arch) } : {}),
    ...(hv ? { hvType: canonicalHvType(hv) } : {}),
  };
}
