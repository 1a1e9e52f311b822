/**
 * Cinder's microversions: `OpenStack-API-Version: volume 3.x` (or `latest`) selects one in
 * [MIN_VOLUME_MICROVERSION, MAX_VOLUME_MICROVERSION]; none asked is 3.0; one out of range is 406, a
 * malformed one 400. Every response names the version it was served at and varies on the header.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors';

export interface Microversion {
  major: 3;
  minor: number;
}

export const MIN_VOLUME_MICROVERSION: Microversion = { major: 3, minor: 0 };
/** The highest one whose volume fields bootflow returns (group_id 3.13, provider_id 3.21, shared_targets 3.48). */
export const MAX_VOLUME_MICROVERSION: Microversion = { major: 3, minor: 50 };

export const formatVersion = (v: Microversion): string => `${v.major}.${v.minor}`;

export function parseVolumeMicroversion(request: FastifyRequest): Microversion {
  const header = request.headers['openstack-api-version'];
  const values = (Array.isArray(header) ? header.join(',') : (header ?? '')).split(',');
  const asked = values
    .map((v) => v.trim().split(/\s+/))
    .find(([service]) => service?.toLowerCase() === 'volume')?.[1];
  if (asked === undefined) return MIN_VOLUME_MICROVERSION;
  if (asked === 'latest') return MAX_VOLUME_MICROVERSION;
  const match = /^([1-9]\d*)\.(0|[1-9]\d*)$/.exec(asked);
  if (!match)
    throw new ApiError(
      400,
      `API Version String ${asked} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  const major = Number(match[1]);
  const minor = Number(match[2]);
  if (major !== 3 || minor > MAX_VOLUME_MICROVERSION.minor)
    throw new ApiError(
      406,
      `Version ${asked} is not supported by the API. Minimum is ${formatVersion(MIN_VOLUME_MICROVERSION)} and maximum is ${formatVersion(MAX_VOLUME_MICROVERSION)}.`,
    );
  return { major: 3, minor };
}

export function versionHeaders(reply: FastifyReply, version: Microversion): void {
  reply.header('OpenStack-API-Version', `volume ${formatVersion(version)}`);
  reply.header('Vary', 'OpenStack-API-Version');
}
