/**
 * Who may see and change what in the embedded Cinder: the caller of a user-facing call (its project and
 * roles; a call without one is the operator's and sees every project), Cinder's not-found and invalid-volume
 * errors, and the transaction outcome its writes return.
 */
import { z } from 'zod';
import { CloudError } from '../errors';
import { parseRequest } from '../validation';
import type { VolumeViewer } from './types';

export function volumeNotFound(id: string): CloudError {
  return new CloudError('NotFound', `Volume ${id} could not be found.`, { volumeId: id });
}

const viewerSchema = z.object({
  projectId: z.string().min(1).max(64),
  roles: z.array(z.string()).readonly(),
});

export function parseViewer(viewer: VolumeViewer | undefined): VolumeViewer | undefined {
  return viewer === undefined ? undefined : parseRequest(viewerSchema, viewer, 'token context');
}

export const isAdmin = (viewer: VolumeViewer): boolean => viewer.roles.includes('admin');

/** Cinder's project-scoped lookup: another project's volume (or snapshot) does not exist for a non-admin. */
export function visibleTo(row: { project_id: string }, viewer: VolumeViewer | undefined): boolean {
  return viewer === undefined || isAdmin(viewer) || row.project_id === viewer.projectId;
}

/** Cinder's SYSTEM_ADMIN_OR_PROJECT_MEMBER check for a write (none for the operator's own calls). */
export function memberRefusal(
  viewer: VolumeViewer | undefined,
  policy: string,
  details: Record<string, unknown>,
): CloudError | undefined {
  if (viewer === undefined || isAdmin(viewer) || viewer.roles.includes('member')) return undefined;
  return new CloudError('Forbidden', `Policy doesn't allow ${policy} to be performed.`, details);
}

export function invalidVolume(message: string, details: Record<string, unknown> = {}): CloudError {
  return new CloudError('InvalidVolume', `Invalid volume: ${message}`, details);
}

/** A transaction body either succeeds or refuses (having written nothing); the refusal is thrown after it ends. */
export type Outcome<T> = { ok: T } | { error: CloudError };
