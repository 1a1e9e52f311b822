/**
 * Cinder's volume snapshots (cinder/volume/api.py create_snapshot, delete_snapshot; cinder-volume's
 * create_snapshot with a file backend): a snapshot is a sparse copy of its volume's file, taken in the
 * background as a volume's creation is (row `creating`, `0%`, then `available`, `100%`, or `error` with the
 * reason), by the Cinder recorded as its worker, whose lost jobs the next Cinder to open takes over. A
 * snapshot claims Cinder's `snapshots` and `gigabytes` quota under its own id before its row is written, and
 * releases it when deleted.
 */
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, parseRequest } from '../validation';
import {
  invalidVolume,
  isAdmin,
  memberRefusal,
  parseViewer,
  visibleTo,
  volumeNotFound,
  type Outcome,
} from './access';
import { applyCreateFault } from './faults';
import { toSnapshot } from './rows';
import type { CinderDb, SnapshotsTable, VolumesTable } from './schema';
import type { CinderFaults, CinderQuota, Snapshot, SnapshotStatus, VolumeViewer } from './types';
import { copySparse, GIB, removeFile, snapshotFile } from './volume-files';
import { volumeMetadataSchema, type VolumeMetadata } from './volume-metadata';
import { workerAlive } from './workers';

/** What snapshots share with the Cinder that holds them. */
export interface SnapshotKit {
  store: ServiceDb<CinderDb>;
  clock: Clock;
  volumesDir: string;
  backend: string;
  /** The Cinder as a worker (`<pid>@<host>/<id>`). */
  worker: string;
  quota: CinderQuota | undefined;
  /** Background jobs of this Cinder by id (volume and snapshot ids), so delete and close can stop them. */
  jobs: Map<string, { abort: AbortController; done: Promise<void> }>;
  faults(): Promise<CinderFaults>;
  closing(): boolean;
}

const textSchema = z.string().max(255).nullable().optional();

const createSnapshotSchema = z.strictObject({
  volumeId: idSchema,
  /** The caller's project (Cinder's snapshot belongs to context.project_id). */
  projectId: z.string().min(1).max(64),
  userId: z.string().min(1).max(64).optional(),
  name: textSchema,
  description: textSchema,
  metadata: volumeMetadataSchema.optional(),
  /** Snapshot an in-use volume too (Cinder's create_snapshot_force). */
  force: z.boolean().optional(),
});

const updateSnapshotSchema = z.strictObject({ name: textSchema, description: textSchema });

const listSnapshotsSchema = z.strictObject({
  projectId: z.string().min(1).max(64).optional(),
  volumeId: idSchema.optional(),
  includeDeleted: z.boolean().optional(),
});

/** The statuses an admin's os-reset_status may set (Cinder's snapshot_status format, those bootflow has). */
export const RESETTABLE_SNAPSHOT_STATUSES = [
  'creating',
  'available',
  'deleting',
  'error',
  'error_deleting',
] as const satisfies readonly SnapshotStatus[];

export type CreateSnapshotRequest = z.input<typeof createSnapshotSchema>;
export type UpdateSnapshotRequest = z.input<typeof updateSnapshotSchema>;

export function snapshotNotFound(id: string): CloudError {
  return new CloudError('NotFound', `Snapshot ${id} could not be found.`, { snapshotId: id });
}

/** Cinder's InvalidSnapshot (400 "Invalid snapshot: ..."). */
export function invalidSnapshot(message: string, details: Record<string, unknown> = {}): CloudError {
  return new CloudError('BadRequest', `Invalid snapshot: ${message}`, { ...details, invalid: 'snapshot' });
}

/** The statuses a snapshot may be deleted from without force (cinder/volume/api.py delete_snapshot). */
const DELETABLE = new Set(['available', 'error']);
const DELETE_REFUSED = 'Snapshot status must be available or error and must not be part of a group.';

/** Why Cinder refuses to snapshot a volume (create_snapshot_in_db and its _validate), or undefined. */
function snapshotRefusal(volume: VolumesTable, force: boolean): CloudError | undefined {
  if (volume.status === 'error')
    return invalidVolume('The snapshot cannot be created when the volume is in error status.', {
      volumeId: volume.id,
    });
  const valid = force ? ['available', 'in-use'] : ['available'];
  if (valid.includes(volume.status) && volume.provider_location !== null) return undefined;
  return invalidVolume(
    `Volume ${volume.id} status must be ${valid.join(', ')}, but current status is: ${volume.status}.`,
    { volumeId: volume.id, status: volume.status },
  );
}

export class Snapshots {
  constructor(private readonly kit: SnapshotKit) {}

  private get db(): Kysely<CinderDb> {
    return this.kit.store.db;
  }

  private async inTransaction<T>(fn: (trx: Kysely<CinderDb>) => Promise<Outcome<T>>): Promise<T> {
    const outcome = await this.kit.store.transaction(fn);
    if ('error' in outcome) throw outcome.error;
    return outcome.ok;
  }

  private async volumeRow(
    trx: Kysely<CinderDb>,
    id: string,
    lock: boolean,
  ): Promise<VolumesTable | undefined> {
    const query = trx.selectFrom('volumes').selectAll().where('id', '=', id);
    const row = await (lock ? this.kit.store.forUpdate(query) : query).executeTakeFirst();
    return row && row.deleted === 0 ? row : undefined;
  }

  /**
   * Takes a snapshot of a volume: refused (nothing written, no quota held) for a volume the caller cannot see
   * (NotFound) or write (Forbidden), one not `available` (or `in-use` with force), or when the project's
   * `snapshots` or `gigabytes` quota has no room (QuotaExceeded). Answers the snapshot `creating`.
   */
  async create(input: CreateSnapshotRequest, viewer?: VolumeViewer): Promise<Snapshot> {
    const request = parseRequest(createSnapshotSchema, input, 'snapshot');
    const who = parseViewer(viewer);
    const force = request.force === true;
    const found = await this.volumeRow(this.db, request.volumeId, false);
    if (!found || !visibleTo(found, who)) throw volumeNotFound(request.volumeId);
    const forbidden = memberRefusal(who, 'volume:create_snapshot', { volumeId: found.id });
    if (forbidden) throw forbidden;
    const refused = snapshotRefusal(found, force);
    if (refused) throw refused;

    const id = randomUUID();
    // Cinder's order: reserve the quota, write the row, check the volume again, commit (or roll back).
    await this.kit.quota?.claim(request.projectId, id, { snapshots: 1, gigabytes: found.size });
    try {
      await this.inTransaction<true>(async (trx) => {
        const volume = await this.volumeRow(trx, found.id, true);
        if (!volume) return { error: volumeNotFound(found.id) };
        const changed = snapshotRefusal(volume, force);
        if (changed) return { error: changed };
        const now = this.kit.clock.now();
        await trx
          .insertInto('snapshots')
          .values({
            id,
            volume_id: volume.id,
            project_id: request.projectId,
            user_id: request.userId ?? null,
            name: request.name ?? null,
            description: request.description ?? null,
            size: volume.size,
            status: 'creating',
            progress: '0%',
            provider_location: null,
            error_message: null,
            worker: this.kit.worker,
            deleted: 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
          })
          .execute();
        await this.writeMetadata(trx, id, request.metadata ?? {}, false);
        return { ok: true };
      });
    } catch (err) {
      await this.kit.quota?.release(id);
      throw err;
    }
    const accepted = await this.get(id);
    this.startCreation(id);
    return accepted;
  }

  private startCreation(id: string): void {
    const abort = new AbortController();
    if (this.kit.closing()) abort.abort(new Error('Cinder is closing'));
    const done = this.copy(id, abort.signal)
      .catch(() => undefined) // copy() records its own failures; nothing may escape a background job.
      .finally(() => this.kit.jobs.delete(id));
    this.kit.jobs.set(id, { abort, done });
  }

  /** cinder-volume's side of create: the volume's data copied, the row `available` (guarded by `creating`). */
  private async copy(id: string, signal: AbortSignal): Promise<void> {
    const file = snapshotFile(this.kit.volumesDir, this.kit.backend, id);
    try {
      await applyCreateFault(await this.kit.faults(), signal, 'createSnapshot');
      signal.throwIfAborted();
      const row = await this.requireRow(id);
      const volume = await this.volumeRow(this.db, row.volume_id, false);
      if (!volume?.provider_location) throw new Error(`Volume ${row.volume_id} has no data to snapshot`);
      await copySparse(volume.provider_location, file, row.size * GIB, signal);
      signal.throwIfAborted();
      const result = await this.db
        .updateTable('snapshots')
        .set({
          status: 'available',
          progress: '100%',
          provider_location: file,
          worker: null,
          updated_at: this.kit.clock.now(),
        })
        .where('id', '=', id)
        .where('status', '=', 'creating')
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) === 1) return;
      // Deleted (forced) while we copied: the file is ours to remove. Reset by an admin: it keeps the copy.
      const now = await this.db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
      if (!now || now.deleted === 1 || now.status === 'deleting') await removeFile(file);
      else
        await this.db
          .updateTable('snapshots')
          .set({ provider_location: file, progress: '100%' })
          .where('id', '=', id)
          .execute();
    } catch (err) {
      await removeFile(file).catch(() => undefined);
      // Stopped by close() or a forced delete: the row is someone else's to settle.
      if (signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      await this.db
        .updateTable('snapshots')
        .set({
          status: 'error',
          error_message: message.slice(0, 2000),
          worker: null,
          updated_at: this.kit.clock.now(),
        })
        .where('id', '=', id)
        .where('status', '=', 'creating')
        .execute();
    }
  }

  /**
   * What cinder-volume does for snapshots when it starts: a creation or deletion whose worker died is taken
   * over (a conditional update claims it) and run again from the start.
   */
  async resumeLost(): Promise<void> {
    const rows = await this.db
      .selectFrom('snapshots')
      .selectAll()
      .where('status', 'in', ['creating', 'deleting'])
      .where('deleted', '=', 0)
      .execute();
    for (const row of rows) {
      if (row.worker !== null && workerAlive(row.worker)) continue;
      const previous = row.worker;
      const claimed = await this.db
        .updateTable('snapshots')
        .set({ worker: this.kit.worker, updated_at: this.kit.clock.now() })
        .where('id', '=', row.id)
        .where('status', '=', row.status)
        .where((eb) => (previous === null ? eb('worker', 'is', null) : eb('worker', '=', previous)))
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) continue;
      if (row.status === 'creating') this.startCreation(row.id);
      else await this.finishDelete(row).catch(() => undefined);
    }
  }

  private async requireRow(id: string): Promise<SnapshotsTable> {
    const row = await this.db.selectFrom('snapshots').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.deleted === 1) throw snapshotNotFound(id);
    return row;
  }

  private async toSnapshots(rows: SnapshotsTable[]): Promise<Snapshot[]> {
    if (rows.length === 0) return [];
    const metadata = await this.db
      .selectFrom('snapshot_metadata')
      .selectAll()
      .where(
        'snapshot_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('key')
      .execute();
    return rows.map((row) =>
      toSnapshot(
        row,
        metadata.filter((m) => m.snapshot_id === row.id),
      ),
    );
  }

  /** A snapshot; with a viewer, another project's is NotFound unless the viewer is admin. */
  async get(snapshotId: string, viewer?: VolumeViewer): Promise<Snapshot> {
    const id = parseRequest(idSchema, snapshotId, 'snapshot id');
    const who = parseViewer(viewer);
    const row = await this.requireRow(id);
    if (!visibleTo(row, who)) throw snapshotNotFound(id);
    const [snapshot] = await this.toSnapshots([row]);
    return snapshot!;
  }

  /** Snapshots, oldest first; with a non-admin viewer only the viewer's project's. */
  async list(filter: z.input<typeof listSnapshotsSchema> = {}, viewer?: VolumeViewer): Promise<Snapshot[]> {
    const f = parseRequest(listSnapshotsSchema, filter, 'snapshot filter');
    const who = parseViewer(viewer);
    let query = this.db.selectFrom('snapshots').selectAll().orderBy('created_at').orderBy('id');
    if (f.projectId !== undefined) query = query.where('project_id', '=', f.projectId);
    if (f.volumeId !== undefined) query = query.where('volume_id', '=', f.volumeId);
    if (who && !isAdmin(who)) query = query.where('project_id', '=', who.projectId);
    if (!f.includeDeleted) query = query.where('deleted', '=', 0);
    return this.toSnapshots(await query.execute());
  }

  /** The caller's writable snapshot: NotFound before Forbidden, as Cinder looks it up first. */
  private async writable(snapshotId: string, policy: string, viewer?: VolumeViewer): Promise<Snapshot> {
    const snapshot = await this.get(snapshotId, viewer);
    const forbidden = memberRefusal(parseViewer(viewer), policy, { snapshotId: snapshot.id });
    if (forbidden) throw forbidden;
    return snapshot;
  }

  /** Cinder's snapshot update (PUT /snapshots/{id}): name and description, in any state; null clears. */
  async update(snapshotId: string, changes: UpdateSnapshotRequest, viewer?: VolumeViewer): Promise<Snapshot> {
    const update = parseRequest(updateSnapshotSchema, changes, 'snapshot update');
    const snapshot = await this.writable(snapshotId, 'volume:update_snapshot', viewer);
    await this.db
      .updateTable('snapshots')
      .set({
        ...(update.name !== undefined ? { name: update.name } : {}),
        ...(update.description !== undefined ? { description: update.description } : {}),
        updated_at: this.kit.clock.now(),
      })
      .where('id', '=', snapshot.id)
      .execute();
    return this.get(snapshot.id, viewer);
  }

  /** Snapshot metadata create (merge) or update_all (replace); the snapshot's metadata after it. */
  async setMetadata(
    snapshotId: string,
    metadata: VolumeMetadata,
    mode: 'merge' | 'replace',
    viewer?: VolumeViewer,
  ): Promise<Record<string, string>> {
    const items = parseRequest(volumeMetadataSchema, metadata, 'snapshot metadata');
    const snapshot = await this.writable(snapshotId, 'volume:update_snapshot_metadata', viewer);
    await this.kit.store.transaction(async (trx) => {
      await this.writeMetadata(trx, snapshot.id, items, mode === 'replace');
      await trx
        .updateTable('snapshots')
        .set({ updated_at: this.kit.clock.now() })
        .where('id', '=', snapshot.id)
        .execute();
    });
    return (await this.get(snapshot.id, viewer)).metadata;
  }

  /** Removes one metadata key; NotFound (Cinder's SnapshotMetadataNotFound) when there is no such key. */
  async deleteMetadataItem(snapshotId: string, key: string, viewer?: VolumeViewer): Promise<void> {
    const snapshot = await this.writable(snapshotId, 'volume:delete_snapshot_metadata', viewer);
    const removed = await this.db
      .deleteFrom('snapshot_metadata')
      .where('snapshot_id', '=', snapshot.id)
      .where('key', '=', key)
      .executeTakeFirst();
    if (Number(removed.numDeletedRows) === 0)
      throw new CloudError('NotFound', `Snapshot ${snapshot.id} has no metadata with key ${key}.`, {
        snapshotId: snapshot.id,
      });
  }

  /** Cinder's update_snapshot_metadata: the items set; with replace, every other key removed. */
  private async writeMetadata(
    trx: Kysely<CinderDb>,
    snapshotId: string,
    metadata: VolumeMetadata,
    replace: boolean,
  ): Promise<void> {
    const keys = Object.keys(metadata);
    if (replace) {
      let removal = trx.deleteFrom('snapshot_metadata').where('snapshot_id', '=', snapshotId);
      if (keys.length > 0) removal = removal.where('key', 'not in', keys);
      await removal.execute();
    }
    if (keys.length === 0) return;
    await trx
      .deleteFrom('snapshot_metadata')
      .where('snapshot_id', '=', snapshotId)
      .where('key', 'in', keys)
      .execute();
    await trx
      .insertInto('snapshot_metadata')
      .values(keys.map((key) => ({ snapshot_id: snapshotId, key, value: metadata[key]! })))
      .execute();
  }

  /** An admin's os-reset_status: the status set as given, nothing else checked or done (as Cinder's). */
  async resetStatus(snapshotId: string, status: SnapshotStatus, viewer?: VolumeViewer): Promise<Snapshot> {
    const value = parseRequest(z.enum(RESETTABLE_SNAPSHOT_STATUSES), status, 'snapshot status');
    const snapshot = await this.get(snapshotId, viewer);
    const who = parseViewer(viewer);
    if (who && !isAdmin(who))
      throw new CloudError(
        'Forbidden',
        `Policy doesn't allow volume_extension:snapshot_admin_actions:reset_status to be performed.`,
        { snapshotId: snapshot.id },
      );
    await this.db
      .updateTable('snapshots')
      .set({ status: value, worker: null, updated_at: this.kit.clock.now() })
      .where('id', '=', snapshot.id)
      .execute();
    return this.get(snapshot.id, viewer);
  }

  /**
   * Deletes a snapshot (`available` or `error`; any status with force, a creation in progress stopped): its
   * file removed, its quota released, then its row. Without a viewer, an unknown or deleted one is false.
   */
  async delete(
    snapshotId: string,
    options: { force?: boolean } = {},
    viewer?: VolumeViewer,
  ): Promise<boolean> {
    const id = parseRequest(idSchema, snapshotId, 'snapshot id');
    const { force } = parseRequest(
      z.strictObject({ force: z.boolean().optional() }),
      options,
      'delete options',
    );
    const who = parseViewer(viewer);
    const row = await this.inTransaction<SnapshotsTable | undefined>(async (trx) => {
      const snapshot = await this.kit.store
        .forUpdate(trx.selectFrom('snapshots').selectAll().where('id', '=', id))
        .executeTakeFirst();
      const gone = !snapshot || snapshot.deleted === 1;
      if (who && (gone || !visibleTo(snapshot, who))) return { error: snapshotNotFound(id) };
      if (gone) return { ok: undefined };
      const forbidden = memberRefusal(who, 'volume:delete_snapshot', { snapshotId: id });
      if (forbidden) return { error: forbidden };
      if (force && who && !isAdmin(who))
        return {
          error: new CloudError(
            'Forbidden',
            `Policy doesn't allow volume_extension:snapshot_admin_actions:force_delete to be performed.`,
            { snapshotId: id },
          ),
        };
      if (!force && !DELETABLE.has(snapshot.status))
        return { error: invalidSnapshot(DELETE_REFUSED, { snapshotId: id, status: snapshot.status }) };
      await this.markDeleting(trx, [id]);
      return { ok: snapshot };
    });
    if (!row) return false;
    await this.finishDelete(row);
    return true;
  }

  /** Marks snapshots `deleting` by this Cinder (inside the caller's transaction: a snapshot or volume delete). */
  async markDeleting(trx: Kysely<CinderDb>, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await trx
      .updateTable('snapshots')
      .set({ status: 'deleting', worker: this.kit.worker, updated_at: this.kit.clock.now() })
      .where('id', 'in', ids)
      .execute();
  }

  /**
   * The cinder-volume side of a delete, for a snapshot already `deleting`: any creation stopped, the file
   * removed, the quota released, the row deleted; each step idempotent, so a takeover may run it again. A
   * file that cannot be removed leaves the snapshot `error_deleting` (ServiceUnavailable).
   */
  async finishDelete(row: SnapshotsTable): Promise<void> {
    const job = this.kit.jobs.get(row.id);
    if (job) {
      job.abort.abort(new Error(`Snapshot ${row.id} was deleted`));
      await job.done;
    }
    try {
      await removeFile(row.provider_location ?? snapshotFile(this.kit.volumesDir, this.kit.backend, row.id));
    } catch (err) {
      const message = `Could not remove the snapshot file: ${err instanceof Error ? err.message : String(err)}`;
      await this.db
        .updateTable('snapshots')
        .set({
          status: 'error_deleting',
          error_message: message,
          worker: null,
          updated_at: this.kit.clock.now(),
        })
        .where('id', '=', row.id)
        .execute();
      throw new CloudError('ServiceUnavailable', `Snapshot ${row.id} could not be deleted: ${message}`, {
        snapshotId: row.id,
      });
    }
    await this.kit.quota?.release(row.id);
    const now = this.kit.clock.now();
    await this.db
      .updateTable('snapshots')
      .set({
        status: 'deleted',
        deleted: 1,
        deleted_at: now,
        updated_at: now,
        provider_location: null,
        worker: null,
      })
      .where('id', '=', row.id)
      .execute();
  }

  /** The live (not deleted) snapshots of a volume, read in the caller's transaction. */
  async ofVolume(trx: Kysely<CinderDb>, volumeId: string): Promise<SnapshotsTable[]> {
    return trx
      .selectFrom('snapshots')
      .selectAll()
      .where('volume_id', '=', volumeId)
      .where('deleted', '=', 0)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }
}
