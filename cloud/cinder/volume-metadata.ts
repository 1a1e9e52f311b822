/**
 * Cinder's user metadata of a volume (its volume_metadata table): keys as Cinder's extra_specs schema allows
 * them (1-255 of letters, digits and `-_:. /`), values up to 255 characters.
 */
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { CinderDb } from './schema';

export const METADATA_KEY = /^[a-zA-Z0-9-_:. /]{1,255}$/;

export const volumeMetadataSchema = z.record(
  z.string().regex(METADATA_KEY, 'is not a valid metadata key'),
  z.string().max(255),
);
export type VolumeMetadata = z.infer<typeof volumeMetadataSchema>;

/** The metadata rows of these volumes, by volume id. */
export async function readMetadata(
  db: Kysely<CinderDb>,
  volumeIds: readonly string[],
): Promise<Map<string, CinderDb['volume_metadata'][]>> {
  const byVolume = new Map<string, CinderDb['volume_metadata'][]>();
  if (volumeIds.length === 0) return byVolume;
  const rows = await db
    .selectFrom('volume_metadata')
    .selectAll()
    .where('volume_id', 'in', [...volumeIds])
    .orderBy('key')
    .execute();
  for (const row of rows) byVolume.set(row.volume_id, [...(byVolume.get(row.volume_id) ?? []), row]);
  return byVolume;
}

/**
 * Cinder's update_volume_metadata: the given items set (added or changed); with replace, every other key
 * removed too (PUT of the whole set).
 */
export async function writeMetadata(
  trx: Kysely<CinderDb>,
  volumeId: string,
  metadata: VolumeMetadata,
  replace: boolean,
): Promise<void> {
  const keys = Object.keys(metadata);
  if (replace) {
    let removal = trx.deleteFrom('volume_metadata').where('volume_id', '=', volumeId);
    if (keys.length > 0) removal = removal.where('key', 'not in', keys);
    await removal.execute();
  }
  if (keys.length === 0) return;
  await trx
    .deleteFrom('volume_metadata')
    .where('volume_id', '=', volumeId)
    .where('key', 'in', keys)
    .execute();
  await trx
    .insertInto('volume_metadata')
    .values(keys.map((key) => ({ volume_id: volumeId, key, value: metadata[key]! })))
    .execute();
}
