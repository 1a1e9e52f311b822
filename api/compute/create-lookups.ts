/**
 * The reads every POST /servers repeats — the flavors, the image, a network — kept for a moment and shared
 * by the creates of a burst. A copy serves only while no table it came from has been written by this
 * process (cloud/db-writes.ts: a flavor deleted or an image deactivated through these APIs is seen by the
 * next create) and for at most LOOKUP_TTL_MS, the bound for writes made by another process on the same
 * databases. Images and networks are kept per caller (project and roles): visibility is the service's own
 * check, made on the read. Failures are not kept. The values are shared: callers only read them.
 */
import type { Cloud } from '../../cloud';
import type { WriteGenerations } from '../../cloud/db-writes';
import { StampedCache } from '../../cloud/stamped-cache';
import type { Image, ImageRequestContext } from '../../cloud/glance';
import type { Network, NetworkViewer } from '../../cloud/neutron';
import type { Flavor, FlavorViewer } from '../../cloud/nova';

/** How long a copy may serve at most (writes by other processes are seen after this). */
export const LOOKUP_TTL_MS = 1000;
/** Copies kept at most; the oldest goes first. */
const MAX_ENTRIES = 1000;

const FLAVOR_TABLES = ['flavors', 'flavor_projects'] as const;
const IMAGE_TABLES = ['images', 'image_properties', 'image_tags', 'image_members'] as const;
const NETWORK_TABLES = ['networks', 'subnets'] as const;

export class CreateLookups {
  private readonly entries = new StampedCache<Promise<unknown>>(MAX_ENTRIES);

  constructor(
    private readonly cloud: Pick<Cloud, 'nova' | 'glance' | 'neutron'>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The flavors the viewer may boot: all for an admin, else the public ones and its project's private ones. */
  flavors(viewer: FlavorViewer): Promise<Flavor[]> {
    const { nova } = this.cloud;
    if (viewer.admin) return this.kept('flavors', nova.writes, FLAVOR_TABLES, () => nova.listFlavors());
    return this.kept(`flavors ${viewer.projectId}`, nova.writes, FLAVOR_TABLES, () =>
      nova.listFlavors({ isPublic: true, projectId: viewer.projectId }),
    );
  }

  image(id: string, caller: ImageRequestContext): Promise<Image> {
    const { glance } = this.cloud;
    return this.kept(`image ${id} ${callerKey(caller)}`, glance.writes, IMAGE_TABLES, () =>
      glance.getImage(id, caller),
    );
  }

  network(id: string, viewer: NetworkViewer): Promise<Network> {
    const { neutron } = this.cloud;
    return this.kept(`network ${id} ${callerKey(viewer)}`, neutron.writes, NETWORK_TABLES, () =>
      neutron.getNetwork(id, viewer),
    );
  }

  private kept<T>(
    key: string,
    writes: WriteGenerations,
    tables: readonly string[],
    read: () => Promise<T>,
  ): Promise<T> {
    // Noted before the read: a write that overlaps it moves the generation, and the copy is not used again.
    const generation = writes.generation(tables);
    const now = this.now();
    const hit = this.entries.get(key, generation, now);
    if (hit) return hit as Promise<T>;
    const value = read();
    this.entries.set(key, value, generation, now + LOOKUP_TTL_MS);
    value.catch(() => this.entries.deleteIf(key, value));
    return value;
  }
}

function callerKey(caller: { projectId: string; roles: readonly string[] }): string {
  return `${caller.projectId} ${[...caller.roles].sort().join(',')}`;
}
