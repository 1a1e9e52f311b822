/**
 * Cinder's availability zones (os-availability-zone: the one zone, `nova`, that volumes are created in) and
 * its extensions list (GET /extensions), naming only the extensions bootflow serves.
 */
import type { FastifyInstance } from 'fastify';

/** cinder/api/contrib's descriptors of what bootflow's volume API answers. */
const EXTENSIONS = [
  ['AvailabilityZones', 'os-availability-zone', 'Describe Availability Zones.', '2013-06-27T00:00:00+00:00'],
  [
    'ExtendedSnapshotAttributes',
    'os-extended-snapshot-attributes',
    'Extended SnapshotAttributes support.',
    '2012-06-19T00:00:00+00:00',
  ],
  ['VolumeActions', 'os-volume-actions', 'Enable volume actions.', '2012-05-31T00:00:00+00:00'],
  [
    'VolumeHostAttribute',
    'os-vol-host-attr',
    'Expose host as an attribute of a volume.',
    '2011-11-03T00:00:00+00:00',
  ],
  [
    'VolumeImageMetadata',
    'os-vol-image-meta',
    'Show image metadata associated with the volume.',
    '2012-12-07T00:00:00+00:00',
  ],
  [
    'VolumeMigStatusAttribute',
    'os-vol-mig-status-attr',
    'Expose migration_status as an attribute of a volume.',
    '2013-08-08T00:00:00+00:00',
  ],
  [
    'VolumeTenantAttribute',
    'os-vol-tenant-attr',
    'Expose the internal project_id as an attribute of a volume.',
    '2011-11-03T00:00:00+00:00',
  ],
] as const;

export async function volumeZoneRoutes(
  app: FastifyInstance,
  route: (path: string) => string[],
): Promise<void> {
  for (const path of route('/os-availability-zone'))
    app.get(path, async () => ({
      availabilityZoneInfo: [{ zoneName: 'nova', zoneState: { available: true } }],
    }));
  for (const path of route('/extensions'))
    app.get(path, async () => ({
      extensions: EXTENSIONS.map(([name, alias, description, updated]) => ({
        name,
        alias,
        description,
        updated,
        links: [],
      })),
    }));
}
