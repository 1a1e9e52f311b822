/**
 * Cinder's volume list conventions (cinder/api/common.py, v3/volumes.py): the filters bootflow's volumes
 * carry (name, status, availability_zone, metadata), `sort` (`key[:dir],...`) or `sort_key`/`sort_dir`
 * (default newest first), `marker` and `limit`, and the `volumes_links` next link whenever a page is full.
 */
import type { Volume } from '../../cloud/cinder';
import { ApiError } from '../errors';
import { parseMetadataFilter } from './validation';

/** The sort keys bootflow answers, each with how a volume compares by it. */
const SORT_KEYS: Record<string, (v: Volume) => string | number> = {
  id: (v) => v.id,
  name: (v) => v.name,
  status: (v) => v.status,
  size: (v) => v.sizeGb,
  created_at: (v) => v.createdAt,
  updated_at: (v) => v.updatedAt,
  bootable: (v) => (v.bootable ? 1 : 0),
  availability_zone: () => 'nova',
};

type Sort = Array<{ key: string; dir: 'asc' | 'desc' }>;

function parseSort(query: Record<string, string | undefined>): Sort {
  const pairs: Array<[string, string | undefined]> = query.sort
    ? query.sort.split(',').map((item) => {
        const [key = '', dir] = item.trim().split(':');
        return [key, dir];
      })
    : query.sort_key
      ? [[query.sort_key, query.sort_dir]]
      : [];
  const sort = pairs.map(([key, dir]) => {
    if (!Object.hasOwn(SORT_KEYS, key))
      throw new ApiError(400, `Invalid input received: Invalid sort key ${key}`);
    const direction = (dir ?? query.sort_dir ?? 'desc').toLowerCase();
    if (direction !== 'asc' && direction !== 'desc')
      throw new ApiError(400, `Invalid input received: Unknown sort direction, must be 'desc' or 'asc'`);
    return { key, dir: direction as 'asc' | 'desc' };
  });
  // Cinder adds created_at and id (its default keys) as tie-breakers.
  for (const key of ['created_at', 'id'])
    if (!sort.some((s) => s.key === key)) sort.push({ key, dir: sort[0]?.dir ?? 'desc' });
  return sort;
}

function compare(sort: Sort) {
  return (a: Volume, b: Volume): number => {
    for (const { key, dir } of sort) {
      const x = SORT_KEYS[key]!(a);
      const y = SORT_KEYS[key]!(b);
      if (x !== y) return (x < y ? -1 : 1) * (dir === 'asc' ? 1 : -1);
    }
    return 0;
  };
}

/** One page of the volumes: filtered, sorted, after the marker, up to the limit, with the next link. */
export function volumePage(
  all: Volume[],
  query: Record<string, string | undefined>,
  collectionUrl: string,
): { volumes: Volume[]; links: Array<{ rel: 'next'; href: string }> } {
  let volumes = all;
  if (query.name !== undefined) volumes = volumes.filter((v) => v.name === query.name);
  if (query.status !== undefined) volumes = volumes.filter((v) => v.status === query.status);
  // Every volume is in `nova`.
  if (query.availability_zone !== undefined && query.availability_zone !== 'nova') volumes = [];
  if (query.metadata !== undefined) {
    const wanted = Object.entries(parseMetadataFilter(query.metadata));
    volumes = volumes.filter((v) => wanted.every(([k, value]) => v.metadata[k] === value));
  }
  volumes = [...volumes].sort(compare(parseSort(query)));
  if (query.marker !== undefined) {
    const at = volumes.findIndex((v) => v.id === query.marker);
    if (at < 0) throw new ApiError(404, `Volume ${query.marker} could not be found.`);
    volumes = volumes.slice(at + 1);
  }
  if (query.limit === undefined) return { volumes, links: [] };
  const limit = Number(query.limit);
  if (!/^\d+$/.test(query.limit) || !Number.isSafeInteger(limit))
    throw new ApiError(400, 'limit param must be an integer');
  volumes = volumes.slice(0, limit);
  const last = volumes.at(-1);
  if (!last || volumes.length < limit) return { volumes, links: [] };
  const params = new URLSearchParams(
    Object.entries(query).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  params.set('marker', last.id);
  return { volumes, links: [{ rel: 'next', href: `${collectionUrl}?${params.toString()}` }] };
}
