/**
 * Compute API microversions as nova/api/openstack/api_version_request.py and wsgi.py handle them: the
 * version comes from `OpenStack-API-Version: compute X.Y` or else `X-OpenStack-Nova-API-Version: X.Y`,
 * `latest` means the maximum, none means 2.1; a malformed one is 400, one out of range 406; every answer
 * names the version it was served at and says it varies with those headers.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError } from '../errors';

export interface Microversion {
  major: number;
  minor: number;
}

export const MIN_MICROVERSION: Microversion = { major: 2, minor: 1 };
/**
 * The highest microversion whose request and response changes the compute API implements: up to 2.79
 * (delete_on_termination in volumes_attached since 2.3, ..., server body fields up to 2.79).
 */
export const MAX_MICROVERSION: Microversion = { major: 2, minor: 79 };

export const formatVersion = (v: Microversion): string => `${v.major}.${v.minor}`;

declare module 'fastify' {
  interface FastifyRequest {
    microversion: Microversion;
  }
}

/** version >= wanted, e.g. atLeast(request, 2, 47). */
export function atLeast(request: FastifyRequest, major: number, minor: number): boolean {
  const v = request.microversion;
  return v.major > major || (v.major === major && v.minor >= minor);
}

function compare(a: Microversion, b: Microversion): number {
  return a.major - b.major || a.minor - b.minor;
}

/** APIVersionRequest's format: MajorNum.MinorNum without leading zeros (minor may be 0). */
const VERSION_RE = /^([1-9]\d*)\.([1-9]\d*|0)$/;

function headerValue(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** What the client asked for, by Nova's rules; undefined when it asked for nothing (2.1). */
function requestedVersion(request: FastifyRequest): string | undefined {
  const standard = headerValue(request, 'openstack-api-version');
  if (standard !== undefined) {
    // "compute 2.47, volume 3.0": only the compute entry counts.
    for (const part of standard.split(',')) {
      const [service, version] = part.trim().split(/\s+/, 2);
      if (service?.toLowerCase() === 'compute' && version !== undefined) return version;
    }
  }
  return headerValue(request, 'x-openstack-nova-api-version')?.trim();
}

export function parseMicroversion(request: FastifyRequest): Microversion {
  const asked = requestedVersion(request);
  if (asked === undefined) return MIN_MICROVERSION;
  if (asked.toLowerCase() === 'latest') return MAX_MICROVERSION;
  const match = VERSION_RE.exec(asked);
  if (!match) {
    throw new ApiError(
      400,
      `API Version String ${asked} is of invalid format. Must be of format MajorNum.MinorNum.`,
    );
  }
  const version = { major: Number(match[1]), minor: Number(match[2]) };
  if (compare(version, MIN_MICROVERSION) < 0 || compare(version, MAX_MICROVERSION) > 0) {
    throw new ApiError(
      406,
      `Version ${asked} is not supported by the API. Minimum is ${formatVersion(MIN_MICROVERSION)} and maximum is ${formatVersion(MAX_MICROVERSION)}.`,
    );
  }
  return version;
}

export const VARY_HEADER = 'OpenStack-API-Version, X-OpenStack-Nova-API-Version';

/** The response headers naming the version served. */
export function versionHeaders(reply: FastifyReply, version: Microversion): void {
  const v = formatVersion(version);
  reply.header('openstack-api-version', `compute ${v}`);
  reply.header('x-openstack-nova-api-version', v);
  reply.header('vary', VARY_HEADER);
}
