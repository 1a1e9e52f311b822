/**
 * cinder-api + cinder-volume with a file backend, embedded. Volumes are sparse files of their real size
 * under `<dataDir>/volumes/<backend>/`. Creation is asynchronous, as with cinder-volume: the row starts in
 * `creating`, the data work runs in the background and ends in `available` or `error`; callers poll.
 * Attachments follow Cinder's attachment API: reserve → attaching (connector known) → attached → detached.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { OPEN_HERE, workerAlive } from './workers';
import { invalidVolume, isAdmin, parseViewer, visibleTo, volumeNotFound, type Outcome } from './access';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import { z } from 'zod';
import { systemClock, type Clock } from '../clock';
import { openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError } from '../errors';
import { idSchema, nameSchema, parseRequest } from '../validation';
import { applyCallFault, applyCreateFault, faultsSchema, readFaultsFile } from './faults';
import { cinderMigrations } from './migrations';
import { toAttachment, toVolume } from './rows';
import type { CinderDb, SnapshotsTable, VolumeAttachmentsTable, VolumesTable } from './schema';
import type {
  CallFault,
  CinderFaults,
  ConnectionInfo,
  CinderQuota,
  ImageSource,
  Volume,
  VolumeAttachment,
  VolumeViewer,
} from './types';
import { isUniqueViolation } from '../db';
import {
  copyImageInto,
  copySparse,
  createSparseFile,
  GIB,
  growFile,
  removeFile,
  volumeFile,
} from './volume-files';
import { invalidSnapshot, Snapshots } from './snapshots';
import { readMetadata, volumeMetadataSchema, writeMetadata, type VolumeMetadata } from './volume-metadata';

export interface CinderOptions {
  db: DbConfig;
  /** Root of the volume store; default db.dataDir. Volumes go to `<dataDir>/volumes/<backend>/`. */
  dataDir?: string;
  clock?: Clock;
  /** The volume backend's name (cinder.conf's volume_backend_name). */
  backend?: string;
  faults?: CinderFaults;
  /** Where snapshots claim Cinder's quota (the cloud gives Nova's quota tables); none: nothing counted. */
  quota?: CinderQuota;
}

const MAX_VOLUME_GB = 10_000;

const imageSourceSchema = z.strictObject({
  imageId: idSchema,
  url: z
    .string()
    .max(4096)
    .refine((u) => u.startsWith('file://'), 'must be a file:// URL'),
  size: z.number().int().min(0),
  checksum: z
    .string()
    .regex(/^[0-9a-f]{32}$/)
    .optional(),
  osHashAlgo: z.enum(['sha512', 'sha384', 'sha256']).optional(),
  osHashValue: z
    .string()
    .regex(/^[0-9a-f]{64,128}$/)
    .optional(),
  diskFormat: z.string().max(32).optional(),
  virtualSize: z.number().int().min(0).nullable().optional(),
});

const createVolumeSchema = z.strictObject({
  requestKey: z.string().min(1).max(255),
  projectId: z.string().min(1).max(64),
  userId: z.string().min(1).max(64).optional(),
  sizeGb: z.number().int().min(1).max(MAX_VOLUME_GB),
  name: nameSchema.optional(),
  description: z.string().max(255).optional(),
  metadata: volumeMetadataSchema.optional(),
  imageSource: imageSourceSchema.optional(),
  /** A volume from a snapshot (`available`, of at most sizeGb): its data copied in. */
  snapshotId: idSchema.optional(),
  deleteOnTermination: z.boolean().optional(),
});

/** Cinder's volume update (PUT /volumes/{id}): null clears a name or description. */
const updateVolumeSchema = z.strictObject({
  name: z.string().max(255).nullable().optional(),
  description: z.string().max(255).nullable().optional(),
  metadata: volumeMetadataSchema.optional(),
});

const instanceUuidSchema = z.string().min(1).max(36);
const hostSchema = z.string().min(1).max(255);

const createAttachmentSchema = z.strictObject({
  volumeId: idSchema,
  instanceUuid: instanceUuidSchema,
  host: hostSchema,
  mountpoint: z.string().min(1).max(255).optional(),
});

const listVolumesSchema = z.strictObject({
  projectId: z.string().min(1).max(64).optional(),
  includeDeleted: z.boolean().optional(),
});

const listAttachmentsSchema = z.strictObject({
  volumeId: idSchema.optional(),
  instanceUuid: instanceUuidSchema.optional(),
  includeDetached: z.boolean().optional(),
});

const waitSchema = z.strictObject({
  timeoutMs: z.number().int().min(0).max(86_400_000).optional(),
  pollMs: z.number().int().min(1).max(60_000).optional(),
});

export type CreateVolumeRequest = z.input<typeof createVolumeSchema>;
export type UpdateVolumeRequest = z.input<typeof updateVolumeSchema>;
export type CreateAttachmentRequest = z.input<typeof createAttachmentSchema>;

export interface AttachmentResult {
  attachmentId: string;
  connectionInfo: ConnectionInfo;
  attachment: VolumeAttachment;
}

/** Statuses in which a volume may be deleted without force, as Cinder allows. */
const DELETABLE = new Set(['available', 'error', 'error_deleting', 'deleting']);
/** Additionally deletable with force (cinder force-delete): a volume stuck in creation. */
const FORCE_DELETABLE = new Set([...DELETABLE, 'creating']);

/** cinder/volume/api.py delete's message (its expected statuses joined by build_or_str). */
const DELETE_REFUSED =
  'Volume status must be available or error or error_restoring or error_extending or error_managing and ' +
  'must not be migrating, attached, belong to a group, have snapshots, awaiting a transfer, or be ' +
  'disassociated from snapshots after volume transfer.';

function attachmentNotFound(id: string): CloudError {
  return new CloudError('NotFound', `Volume attachment ${id} could not be found.`, { attachmentId: id });
}

export class Cinder {
  /** Background creations in this process, by volume id, so delete and close can stop them. */
  private readonly jobs = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private closing = false;
  private faults: CinderFaults | undefined;
  /** This Cinder as the runner of creations (`<pid>@<host>/<id>`), recorded on the volumes it creates. */
  private readonly worker = `${process.pid}@${os.hostname()}/${randomUUID()}`;
  /** Volume snapshots (snapshots.ts): create, list, show, update, metadata, delete, reset status. */
  readonly snapshots: Snapshots;

  private constructor(
    private readonly store: ServiceDb<CinderDb>,
    private readonly clock: Clock,
    private readonly volumesDir: string,
    private readonly backend: string,
    faults: CinderFaults | undefined,
    quota: CinderQuota | undefined,
  ) {
    this.faults = faults;
    this.snapshots = new Snapshots({
      store,
      clock,
      volumesDir,
      backend,
      worker: this.worker,
      quota,
      jobs: this.jobs,
      faults: async () => this.faults ?? (await readFaultsFile(volumesDir)),
      closing: () => this.closing,
    });
  }

  static async open(options: CinderOptions): Promise<Cinder> {
    const backend = parseRequest(
      z
        .string()
        .regex(/^[A-Za-z0-9_.-]{1,64}$/)
        .default('file-1'),
      options.backend,
      'backend name',
    );
    const faults =
      options.faults === undefined ? undefined : parseRequest(faultsSchema, options.faults, 'faults');
    const store = await openServiceDb<CinderDb>('cinder', cinderMigrations, options.db);
    const volumesDir = path.join(path.resolve(options.dataDir ?? options.db.dataDir), 'volumes');
    const cinder = new Cinder(
      store,
      options.clock ?? systemClock,
      volumesDir,
      backend,
      faults,
      options.quota,
    );
    OPEN_HERE.add(cinder.worker);
    try {
      await cinder.resumeLostCreations();
      await cinder.snapshots.resumeLost();
    } catch (err) {
      await cinder.close();
      throw err;
    }
    return cinder;
  }

  /**
   * What cinder-volume does when it starts: creations whose worker is gone (its process was killed or
   * restarted mid-copy) are taken over, one Cinder each (a conditional update claims them), and run again
   * from the start, so no volume stays `creating` with nobody working on it. An image volume from before
   * the image source was recorded cannot be redone: it goes to `error`, as Cinder's init_host does.
   */
  private async resumeLostCreations(): Promise<void> {
    const rows = await this.db
      .selectFrom('volumes')
      .selectAll()
      .where('status', '=', 'creating')
      .where('deleted', '=', 0)
      .execute();
    for (const row of rows) {
      if (row.creation_worker !== null && workerAlive(row.creation_worker)) continue;
      const previous = row.creation_worker;
      const claimed = await this.db
        .updateTable('volumes')
        .set({ creation_worker: this.worker, updated_at: this.clock.now() })
        .where('id', '=', row.id)
        .where('status', '=', 'creating')
        .where((eb) =>
          previous === null ? eb('creation_worker', 'is', null) : eb('creation_worker', '=', previous),
        )
        .executeTakeFirst();
      if (Number(claimed.numUpdatedRows) !== 1) continue;
      if (row.bootable === 1 && row.image_source === null && row.snapshot_id === null) {
        await this.db
          .updateTable('volumes')
          .set({
            status: 'error',
            error_message: 'Volume creation was interrupted',
            updated_at: this.clock.now(),
          })
          .where('id', '=', row.id)
          .where('status', '=', 'creating')
          .execute();
        continue;
      }
      const source =
        row.image_source === null
          ? undefined
          : parseRequest(imageSourceSchema, JSON.parse(row.image_source), 'recorded image source');
      this.startCreation(row.id, row.size, source, row.snapshot_id ?? undefined);
    }
  }

  /**
   * Stops background creations (their volumes stay `creating`, as with a stopped cinder-volume, until the next
   * Cinder to open takes them over), then closes.
   */
  async close(): Promise<void> {
    this.closing = true;
    OPEN_HERE.delete(this.worker);
    for (const job of this.jobs.values()) job.abort.abort(new Error('Cinder is closing'));
    await Promise.allSettled([...this.jobs.values()].map((job) => job.done));
    await this.store.close();
  }

  /** Replaces the code-set faults (undefined: fall back to `<dataDir>/volumes/faults.json`). */
  setFaults(faults: CinderFaults | undefined): void {
    this.faults = faults === undefined ? undefined : parseRequest(faultsSchema, faults, 'faults');
  }

  /** A test's fault for this call, if set: thrown before the call changes anything. */
  private async callFault(call: CallFault): Promise<void> {
    applyCallFault(this.faults ?? (await readFaultsFile(this.volumesDir)), call);
  }

  /** Where this backend keeps its volume files. */
  get backendDir(): string {
    return path.join(this.volumesDir, this.backend);
  }

  private get db(): Kysely<CinderDb> {
    return this.store.db;
  }

  private async inTransaction<T>(fn: (trx: Kysely<CinderDb>) => Promise<Outcome<T>>): Promise<T> {
    const outcome = await this.store.transaction(fn);
    if ('error' in outcome) throw outcome.error;
    return outcome.ok;
  }

  // ---- volumes -------------------------------------------------------------------------------------

  /**
   * Accepts a volume: the row in `creating`, then in the background a sparse file of sizeGb GiB, with
   * the image's data copied in and verified when imageSource is given; `available`, or `error` with a
   * reason. Idempotent by requestKey: a retry returns the volume the first call created.
   */
  async createVolume(input: CreateVolumeRequest): Promise<Volume> {
    const request = parseRequest(createVolumeSchema, input, 'volume');
    const source = request.imageSource;
    if (source) {
      const needed = Math.max(source.size, source.virtualSize ?? 0);
      if (needed > request.sizeGb * GIB) {
        throw new CloudError(
          'BadRequest',
          `Image ${source.imageId} needs ${Math.ceil(needed / GIB)} GB and does not fit in a volume of ` +
            `${request.sizeGb} GB.`,
          { imageId: source.imageId, sizeGb: request.sizeGb },
        );
      }
    }
    const first = await this.volumeByRequestKey(request.requestKey);
    if (first) return this.getVolumeRow(first);
    const origin = request.snapshotId === undefined ? undefined : await this.snapshotOrigin(request);

    const now = this.clock.now();
    const id = randomUUID();
    try {
      await this.store.transaction(async (trx) => {
        await trx
          .insertInto('volumes')
          .values({
            id,
            name: request.name ?? '',
            description: request.description ?? null,
            readonly: null,
            project_id: request.projectId,
            user_id: request.userId ?? null,
            size: request.sizeGb,
            status: 'creating',
            attach_status: 'detached',
            // A volume from a snapshot is what its origin was: bootable, with its image's metadata.
            bootable: source || origin?.bootable === 1 ? 1 : 0,
            image_id: source?.imageId ?? origin?.image_id ?? null,
            image_metadata: origin?.image_metadata ?? null,
            snapshot_id: request.snapshotId ?? null,
            backend: this.backend,
            provider_location: null,
            error_message: null,
            request_key: request.requestKey,
            deleted: 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
            creation_worker: this.worker,
            image_source: source ? JSON.stringify(source) : null,
            delete_on_termination: request.deleteOnTermination === true ? 1 : 0,
          })
          .execute();
        await writeMetadata(trx, id, request.metadata ?? {}, false);
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const winner = await this.volumeByRequestKey(request.requestKey);
      if (!winner) throw err;
      return this.getVolumeRow(winner);
    }
    // Read the accepted row before the background work can move it on: the caller sees `creating`.
    const accepted = await this.getVolumeRow(await this.requireVolumeRow(id));
    this.startCreation(id, request.sizeGb, source, request.snapshotId);
    return accepted;
  }

  /**
   * Cinder's checks of a volume's snapshot source (create_volume flow's _extract_snapshot, _extract_size):
   * the snapshot `available`, the volume no smaller; the volume the snapshot was taken of.
   */
  private async snapshotOrigin(request: z.infer<typeof createVolumeSchema>): Promise<VolumesTable> {
    if (request.imageSource !== undefined)
      throw new CloudError('BadRequest', 'A volume is made from an image or a snapshot, not both.');
    const snapshot = await this.snapshots.get(request.snapshotId!);
    if (snapshot.status !== 'available')
      throw invalidSnapshot(`Originating snapshot status must be one of 'available' values`, {
        snapshotId: snapshot.id,
        status: snapshot.status,
      });
    if (request.sizeGb < snapshot.sizeGb)
      throw new CloudError(
        'BadRequest',
        `Volume size '${request.sizeGb}'GB cannot be smaller than the snapshot size ${snapshot.sizeGb}GB. ` +
          'They must be >= original snapshot size.',
        { snapshotId: snapshot.id, sizeGb: request.sizeGb },
      );
    const origin = await this.db
      .selectFrom('volumes')
      .selectAll()
      .where('id', '=', snapshot.volumeId)
      .executeTakeFirst();
    if (!origin) throw volumeNotFound(snapshot.volumeId);
    return origin;
  }

  private async volumeByRequestKey(requestKey: string): Promise<VolumesTable | undefined> {
    return this.db.selectFrom('volumes').selectAll().where('request_key', '=', requestKey).executeTakeFirst();
  }

  private startCreation(
    id: string,
    sizeGb: number,
    source: ImageSource | undefined,
    snapshotId: string | undefined,
  ): void {
    const abort = new AbortController();
    if (this.closing) abort.abort(new Error('Cinder is closing'));
    const done = this.create(id, sizeGb, source, snapshotId, abort.signal)
      .catch(() => undefined) // create() records its own failures; nothing may escape a background job.
      .finally(() => this.jobs.delete(id));
    this.jobs.set(id, { abort, done });
  }

  /** The cinder-volume side of createVolume. Every outcome is written to the row, guarded by `creating`. */
  private async create(
    id: string,
    sizeGb: number,
    source: ImageSource | undefined,
    snapshotId: string | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    const file = volumeFile(this.volumesDir, this.backend, id);
    try {
      await applyCreateFault(this.faults ?? (await readFaultsFile(this.volumesDir)), signal);
      signal.throwIfAborted();
      if (snapshotId === undefined) await createSparseFile(file, sizeGb * GIB);
      else {
        const snapshot = await this.snapshots.get(snapshotId);
        if (snapshot.status !== 'available' || snapshot.providerLocation === null)
          throw new Error(`Snapshot ${snapshotId} is ${snapshot.status}; its data cannot be copied`);
        await copySparse(snapshot.providerLocation, file, sizeGb * GIB, signal);
      }
      const copied = source ? await copyImageInto(file, source, signal) : undefined;
      signal.throwIfAborted();
      const result = await this.db
        .updateTable('volumes')
        .set({
          status: 'available',
          provider_location: file,
          ...(copied ? { image_metadata: JSON.stringify(copied) } : {}),
          updated_at: this.clock.now(),
        })
        .where('id', '=', id)
        .where('status', '=', 'creating')
        .executeTakeFirst();
      // Deleted (forced) while we worked: the file is ours to remove.
      if (Number(result.numUpdatedRows) === 0) await removeFile(file);
    } catch (err) {
      await removeFile(file).catch(() => undefined);
      // Stopped by close() or a forced delete: the row is someone else's to settle.
      if (signal.aborted) return;
      const message = err instanceof Error ? err.message : String(err);
      await this.db
        .updateTable('volumes')
        .set({ status: 'error', error_message: message.slice(0, 2000), updated_at: this.clock.now() })
        .where('id', '=', id)
        .where('status', '=', 'creating')
        .execute();
    }
  }

  private async requireVolumeRow(id: string): Promise<VolumesTable> {
    const row = await this.db.selectFrom('volumes').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row || row.deleted === 1) throw volumeNotFound(id);
    return row;
  }

  private async getVolumeRow(row: VolumesTable): Promise<Volume> {
    const attachments = await this.db
      .selectFrom('volume_attachments')
      .selectAll()
      .where('active_volume_id', '=', row.id)
      .execute();
    const metadata = await readMetadata(this.db, [row.id]);
    return toVolume(row, attachments, metadata.get(row.id) ?? []);
  }

  /** A volume; with a viewer, another project's volume is NotFound unless the viewer is admin. */
  async getVolume(volumeId: string, viewer?: VolumeViewer): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    const who = parseViewer(viewer);
    const row = await this.requireVolumeRow(id);
    if (!visibleTo(row, who)) throw volumeNotFound(id);
    return this.getVolumeRow(row);
  }

  /**
   * Cinder's os-set_bootable (volume_api.update with {bootable}): in any state (bootflow has no
   * `maintenance`), except that a volume still `creating` keeps the flag its creation sets (the takeover of a
   * lost creation reads it).
   */
  async setBootable(volumeId: string, bootable: boolean, viewer?: VolumeViewer): Promise<Volume> {
    const volume = await this.getVolume(volumeId, viewer);
    if (volume.status === 'creating')
      throw invalidVolume('The volume cannot be updated while it is creating.', { volumeId: volume.id });
    await this.db
      .updateTable('volumes')
      .set({ bootable: bootable ? 1 : 0, updated_at: this.clock.now() })
      .where('id', '=', volume.id)
      .where('status', '!=', 'creating')
      .execute();
    return this.getVolume(volume.id, viewer);
  }

  /**
   * Cinder's volume update (PUT /volumes/{id}): name, description, and metadata (replacing the whole set),
   * in any state but deleted.
   */
  async updateVolume(volumeId: string, changes: UpdateVolumeRequest, viewer?: VolumeViewer): Promise<Volume> {
    const update = parseRequest(updateVolumeSchema, changes, 'volume update');
    const volume = await this.getVolume(volumeId, viewer);
    await this.store.transaction(async (trx) => {
      await trx
        .updateTable('volumes')
        .set({
          ...(update.name !== undefined ? { name: update.name ?? '' } : {}),
          ...(update.description !== undefined ? { description: update.description } : {}),
          updated_at: this.clock.now(),
        })
        .where('id', '=', volume.id)
        .execute();
      if (update.metadata !== undefined) await writeMetadata(trx, volume.id, update.metadata, true);
    });
    return this.getVolume(volume.id, viewer);
  }

  /**
   * Cinder's volume metadata create (merge: the items set, the others kept) or update_all (replace: the
   * given set becomes the whole); the volume's metadata after it.
   */
  async setVolumeMetadata(
    volumeId: string,
    metadata: VolumeMetadata,
    mode: 'merge' | 'replace',
    viewer?: VolumeViewer,
  ): Promise<Record<string, string>> {
    const items = parseRequest(volumeMetadataSchema, metadata, 'volume metadata');
    const volume = await this.getVolume(volumeId, viewer);
    await this.store.transaction(async (trx) => {
      await writeMetadata(trx, volume.id, items, mode === 'replace');
      await trx
        .updateTable('volumes')
        .set({ updated_at: this.clock.now() })
        .where('id', '=', volume.id)
        .execute();
    });
    return (await this.getVolume(volume.id, viewer)).metadata;
  }

  /** Cinder's os-update_readonly_flag: the volume's `readonly` admin metadata, in any state but creating. */
  async setReadonly(volumeId: string, readonly: boolean, viewer?: VolumeViewer): Promise<Volume> {
    const volume = await this.getVolume(volumeId, viewer);
    if (volume.status === 'creating')
      throw invalidVolume('The volume cannot be updated while it is creating.', { volumeId: volume.id });
    await this.db
      .updateTable('volumes')
      .set({ readonly: readonly ? 1 : 0, updated_at: this.clock.now() })
      .where('id', '=', volume.id)
      .execute();
    return this.getVolume(volume.id, viewer);
  }

  /**
   * Cinder's os-extend of a detached volume: `available` only, to a larger size (InvalidInput otherwise); the
   * backing file grows sparse, then the row takes the new size (a failed grow leaves the row as it was).
   */
  async extendVolume(volumeId: string, newSizeGb: number, viewer?: VolumeViewer): Promise<Volume> {
    const size = parseRequest(z.number().int().min(1).max(MAX_VOLUME_GB), newSizeGb, 'new size');
    const volume = await this.getVolume(volumeId, viewer);
    if (volume.status !== 'available' || volume.providerLocation === null)
      throw invalidVolume(`Volume status must be 'available' to extend, currently in '${volume.status}'.`, {
        volumeId: volume.id,
      });
    if (size <= volume.sizeGb)
      throw new CloudError(
        'BadRequest',
        `New size for extend must be greater than current size. (current: ${volume.sizeGb}, extended: ${size}).`,
        { volumeId: volume.id },
      );
    await growFile(volume.providerLocation, size * GIB);
    const result = await this.db
      .updateTable('volumes')
      .set({ size, updated_at: this.clock.now() })
      .where('id', '=', volume.id)
      .where('status', '=', 'available')
      .where('size', '=', volume.sizeGb)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1)
      throw invalidVolume('The volume changed while it was being extended.', { volumeId: volume.id });
    return this.getVolume(volume.id, viewer);
  }

  /**
   * os-volume_upload_image's start (volume/api.py copy_volume_to_image): an `available` volume (or an
   * `in-use` one with force) goes `uploading`; InvalidVolume otherwise. Returns the volume as it was.
   */
  async beginUpload(volumeId: string, force: boolean, viewer?: VolumeViewer): Promise<Volume> {
    const volume = await this.getVolume(volumeId, viewer);
    const allowed = force ? ['available', 'in-use'] : ['available'];
    if (!allowed.includes(volume.status) || volume.providerLocation === null)
      throw invalidVolume(
        `Volume ${volume.id} status must be available${force ? ' or in-use' : ''}, but current status is: ${volume.status}.`,
        {
          volumeId: volume.id,
        },
      );
    const result = await this.db
      .updateTable('volumes')
      .set({ status: 'uploading', updated_at: this.clock.now() })
      .where('id', '=', volume.id)
      .where('status', '=', volume.status)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1)
      throw invalidVolume('The volume changed while the upload began.', { volumeId: volume.id });
    return volume;
  }

  /** The upload done (or failed): `in-use` if the volume has attachments, else `available`, as Cinder's. */
  async finishUpload(volumeId: string): Promise<Volume> {
    const volume = await this.getVolume(volumeId);
    await this.db
      .updateTable('volumes')
      .set({ status: volume.attachments.length ? 'in-use' : 'available', updated_at: this.clock.now() })
      .where('id', '=', volume.id)
      .where('status', '=', 'uploading')
      .execute();
    return this.getVolume(volume.id);
  }

  /** Removes one metadata key; NotFound (Cinder's VolumeMetadataNotFound) when the volume has no such key. */
  async deleteVolumeMetadataItem(volumeId: string, key: string, viewer?: VolumeViewer): Promise<void> {
    const volume = await this.getVolume(volumeId, viewer);
    const removed = await this.db
      .deleteFrom('volume_metadata')
      .where('volume_id', '=', volume.id)
      .where('key', '=', key)
      .executeTakeFirst();
    if (Number(removed.numDeletedRows) === 0)
      throw new CloudError('NotFound', `Volume ${volume.id} has no metadata with key ${key}.`, {
        volumeId: volume.id,
      });
  }

  /** Volumes; with a non-admin viewer, only the viewer's project's. */
  async listVolumes(
    filter: z.input<typeof listVolumesSchema> = {},
    viewer?: VolumeViewer,
  ): Promise<Volume[]> {
    const f = parseRequest(listVolumesSchema, filter, 'volume filter');
    const who = parseViewer(viewer);
    let query = this.db.selectFrom('volumes').selectAll().orderBy('created_at').orderBy('id');
    if (f.projectId !== undefined) query = query.where('project_id', '=', f.projectId);
    if (who && !isAdmin(who)) query = query.where('project_id', '=', who.projectId);
    if (!f.includeDeleted) query = query.where('deleted', '=', 0);
    const rows = await query.execute();
    return Promise.all(rows.map((row) => this.getVolumeRow(row)));
  }

  /**
   * Polls until the volume is `available`, like Nova's _await_block_device_map_created; VolumeNotCreated
   * when it ends in `error` or is still not ready after timeoutMs (default 180 s).
   */
  async waitForVolume(volumeId: string, options: z.input<typeof waitSchema> = {}): Promise<Volume> {
    const { timeoutMs = 180_000, pollMs = 100 } = parseRequest(waitSchema, options, 'wait options');
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
      const volume = await this.getVolume(volumeId);
      if (volume.status === 'available') return volume;
      const waited = Date.now() - started;
      if (volume.status === 'error' || volume.status !== 'creating' || waited >= timeoutMs) {
        throw new CloudError(
          'VolumeNotCreated',
          `Volume ${volume.id} did not finish being created even after we waited ${Math.round(waited / 1000)} ` +
            `seconds or ${attempt} attempts. And its status is ${volume.status}.`,
          { volumeId: volume.id, status: volume.status, reason: volume.errorMessage },
        );
      }
      await delay(Math.min(pollMs, timeoutMs - waited));
    }
  }

  /**
   * Deletes the volume and its file. Idempotent (an unknown or deleted volume: false). Refused for a volume
   * that is reserved or attached; a volume still `creating` only with force (cinder force-delete). With a
   * viewer, as the API answers it: an unknown, deleted or other project's volume is NotFound, and only an
   * admin or a member of the owning project may delete (Cinder's volume:delete default), else Forbidden.
   *
   * A volume with snapshots is refused (InvalidVolume with details.snapshots, Cinder's message) unless
   * cascade: then its snapshots go first, each `available` or `error` (any status with force) and, for a
   * non-admin, all of the volume's project (Cinder's volume_has_undeletable_snapshots_filter and
   * volume_has_other_project_snp_filter).
   */
  async deleteVolume(
    volumeId: string,
    options: { force?: boolean; cascade?: boolean } = {},
    viewer?: VolumeViewer,
  ): Promise<boolean> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    const { force, cascade } = parseRequest(
      z.strictObject({ force: z.boolean().optional(), cascade: z.boolean().optional() }),
      options,
      'delete options',
    );
    const who = parseViewer(viewer);
    await this.callFault('volumeDelete');
    let snapshots: SnapshotsTable[] = [];
    const row = await this.inTransaction<VolumesTable | undefined>(async (trx) => {
      const volume = await this.store
        .forUpdate(trx.selectFrom('volumes').selectAll().where('id', '=', id))
        .executeTakeFirst();
      if (who && (!volume || volume.deleted === 1 || !visibleTo(volume, who))) {
        return { error: volumeNotFound(id) };
      }
      if (!volume || volume.deleted === 1) return { ok: undefined };
      if (who && !isAdmin(who) && !who.roles.includes('member')) {
        return {
          error: new CloudError('Forbidden', `Policy doesn't allow volume:delete to be performed.`, {
            volumeId: id,
          }),
        };
      }
      const live = await trx
        .selectFrom('volume_attachments')
        .select(['instance_uuid', 'attach_status'])
        .where('active_volume_id', '=', id)
        .executeTakeFirst();
      // Cinder's one refusal (volume/api.py delete), whatever the reason: attached, or a busy status.
      if (live || !(force ? FORCE_DELETABLE : DELETABLE).has(volume.status)) {
        return {
          error: invalidVolume(DELETE_REFUSED, {
            volumeId: id,
            status: volume.status,
            ...(live ? { instanceUuid: live.instance_uuid, attachStatus: live.attach_status } : {}),
          }),
        };
      }
      snapshots = await this.snapshots.ofVolume(trx, id);
      const undeletable = snapshots.filter(
        (s) =>
          (!force && !['available', 'error', 'deleting'].includes(s.status)) ||
          (who !== undefined && !isAdmin(who) && s.project_id !== volume.project_id),
      );
      if (snapshots.length > 0 && (!cascade || undeletable.length > 0)) {
        return {
          error: invalidVolume(DELETE_REFUSED, {
            volumeId: id,
            status: volume.status,
            snapshots: snapshots.map((s) => s.id),
          }),
        };
      }
      await this.snapshots.markDeleting(
        trx,
        snapshots.map((s) => s.id),
      );
      await trx
        .updateTable('volumes')
        .set({ status: 'deleting', updated_at: this.clock.now() })
        .where('id', '=', id)
        .execute();
      return { ok: volume };
    });
    if (!row) return false;
    for (const snapshot of snapshots) await this.snapshots.finishDelete(snapshot);

    const job = this.jobs.get(id);
    if (job) {
      job.abort.abort(new Error(`Volume ${id} was deleted`));
      await job.done;
    }
    try {
      await removeFile(row.provider_location ?? volumeFile(this.volumesDir, row.backend, id));
    } catch (err) {
      const message = `Could not remove the volume file: ${err instanceof Error ? err.message : String(err)}`;
      await this.db
        .updateTable('volumes')
        .set({ status: 'error_deleting', error_message: message, updated_at: this.clock.now() })
        .where('id', '=', id)
        .execute();
      throw new CloudError('ServiceUnavailable', `Volume ${id} could not be deleted: ${message}`, {
        volumeId: id,
      });
    }
    const now = this.clock.now();
    await this.db
      .updateTable('volumes')
      .set({ status: 'deleted', deleted: 1, deleted_at: now, updated_at: now, provider_location: null })
      .where('id', '=', id)
      .execute();
    return true;
  }

  // ---- attachments ---------------------------------------------------------------------------------

  private async lockVolume(trx: Kysely<CinderDb>, id: string): Promise<VolumesTable | undefined> {
    const row = await this.store
      .forUpdate(trx.selectFrom('volumes').selectAll().where('id', '=', id))
      .executeTakeFirst();
    return row && row.deleted === 0 ? row : undefined;
  }

  /**
   * An attachment and its live volume, the volume row locked first (the lock order everywhere: the volume,
   * then its attachments) and the attachment read again under that lock; undefined if either is gone.
   */
  private async lockAttachment(
    trx: Kysely<CinderDb>,
    id: string,
  ): Promise<{ volume: VolumesTable; attachment: VolumeAttachmentsTable } | undefined> {
    const read = () =>
      trx.selectFrom('volume_attachments').selectAll().where('id', '=', id).executeTakeFirst();
    const first = await read();
    if (!first) return undefined;
    const volume = await this.lockVolume(trx, first.volume_id);
    const attachment = volume && (await read());
    return volume && attachment ? { volume, attachment } : undefined;
  }

  private async liveAttachment(
    trx: Kysely<CinderDb>,
    volumeId: string,
  ): Promise<VolumeAttachmentsTable | undefined> {
    return trx
      .selectFrom('volume_attachments')
      .selectAll()
      .where('active_volume_id', '=', volumeId)
      .executeTakeFirst();
  }

  /** The volume's attachments not yet deleted: the live one and a replacement being made beside it. */
  private async openAttachments(trx: Kysely<CinderDb>, volumeId: string): Promise<VolumeAttachmentsTable[]> {
    return trx
      .selectFrom('volume_attachments')
      .selectAll()
      .where('volume_id', '=', volumeId)
      .where('attach_status', '<>', 'detached')
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  }

  private otherInstance(volume: VolumesTable, live: VolumeAttachmentsTable): CloudError {
    return invalidVolume(
      `Volume ${volume.id} is ${volume.status} for instance ${live.instance_uuid}; it cannot be attached ` +
        'to another instance (volumes are not multi-attach).',
      { volumeId: volume.id, instanceUuid: live.instance_uuid },
    );
  }

  private async insertAttachment(
    trx: Kysely<CinderDb>,
    volume: VolumesTable,
    instanceUuid: string,
    fields: Pick<
      VolumeAttachmentsTable,
      'attach_status' | 'attached_host' | 'mountpoint' | 'connection_info'
    >,
    { active = true }: { active?: boolean } = {},
  ): Promise<string> {
    // A volume a server's delete detached keeps that server's delete_on_termination (detachVolume); an
    // attachment to another instance starts without it, as a new block device mapping would.
    if (active) await this.dropEarlierServersFlag(trx, volume, instanceUuid);
    const now = this.clock.now();
    const id = randomUUID();
    await trx
      .insertInto('volume_attachments')
      .values({
        id,
        volume_id: volume.id,
        instance_uuid: instanceUuid,
        // A replacement made beside the live attachment is not the volume's until that one is deleted.
        active_volume_id: active ? volume.id : null,
        attach_time: null,
        detach_time: null,
        created_at: now,
        updated_at: now,
        ...fields,
      })
      .execute();
    return id;
  }

  private async dropEarlierServersFlag(
    trx: Kysely<CinderDb>,
    volume: VolumesTable,
    instanceUuid: string,
  ): Promise<void> {
    if (volume.delete_on_termination !== 1) return;
    const last = await trx
      .selectFrom('volume_attachments')
      .select(['instance_uuid'])
      .where('volume_id', '=', volume.id)
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .executeTakeFirst();
    if (last && last.instance_uuid !== instanceUuid) {
      await this.recordDeleteOnTermination(trx, volume.id, false);
    }
  }

  private async setVolumeState(
    trx: Kysely<CinderDb>,
    id: string,
    status: string,
    attachStatus: string,
  ): Promise<void> {
    await trx
      .updateTable('volumes')
      .set({ status, attach_status: attachStatus, updated_at: this.clock.now() })
      .where('id', '=', id)
      .execute();
  }

  /**
   * Reserves an available volume for an instance (attachment without connector): volume `reserved`,
   * attachment `reserved`. Idempotent for the same instance; InvalidVolume otherwise.
   *
   * With `replacing` (the instance's live attachment, to a host being replaced: an evacuation) a second
   * attachment is made for the same instance beside it, as Cinder's _attachment_reserve allows a reserve
   * for an instance that already has an attachment to the volume (LP bug 1694530). The live one stays the
   * volume's until it is deleted; then the new one takes over (detachVolume). Idempotent too.
   *
   * `deleteOnTermination` (Nova keeps it in its block device mapping, bootflow on the volume) is recorded
   * with a reserve for the instance: whether the volume goes when that instance goes.
   */
  async reserveVolume(
    volumeId: string,
    instanceUuid: string,
    options: { replacing?: string; deleteOnTermination?: boolean } = {},
  ): Promise<VolumeAttachment> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    const instance = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const replacing =
      options.replacing === undefined
        ? undefined
        : parseRequest(idSchema, options.replacing, 'replaced attachment id');
    const attachmentId = await this.inTransaction<string>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      const live = await this.liveAttachment(trx, id);
      if (live && live.instance_uuid !== instance) return { error: this.otherInstance(volume, live) };
      if (live && replacing !== undefined && live.id === replacing) {
        const pending = (await this.openAttachments(trx, id)).find((a) => a.id !== live.id);
        if (pending) return { ok: pending.id };
        return {
          ok: await this.insertAttachment(
            trx,
            volume,
            instance,
            { attach_status: 'reserved', attached_host: null, mountpoint: null, connection_info: null },
            { active: false },
          ),
        };
      }
      if (live) {
        await this.recordDeleteOnTermination(trx, id, options.deleteOnTermination);
        return { ok: live.id };
      }
      if (volume.status !== 'available') {
        return {
          error: invalidVolume(
            `Volume ${id} status must be available to reserve, but the status is ${volume.status}.`,
            { volumeId: id, status: volume.status },
          ),
        };
      }
      const created = await this.insertAttachment(trx, volume, instance, {
        attach_status: 'reserved',
        attached_host: null,
        mountpoint: null,
        connection_info: null,
      });
      await this.setVolumeState(trx, id, 'reserved', 'reserved');
      await this.recordDeleteOnTermination(trx, id, options.deleteOnTermination);
      return { ok: created };
    });
    return this.getAttachment(attachmentId);
  }

  private async recordDeleteOnTermination(
    trx: Kysely<CinderDb>,
    volumeId: string,
    deleteOnTermination: boolean | undefined,
  ): Promise<void> {
    if (deleteOnTermination === undefined) return;
    await trx
      .updateTable('volumes')
      .set({ delete_on_termination: deleteOnTermination ? 1 : 0, updated_at: this.clock.now() })
      .where('id', '=', volumeId)
      .execute();
  }

  /**
   * Gives the attachment its connector (the compute host): volume and attachment `attaching`, and the
   * connection info the host needs. Reserves implicitly when the volume is still available. Idempotent
   * for the same instance and host.
   */
  async createAttachment(input: CreateAttachmentRequest): Promise<AttachmentResult> {
    const request = parseRequest(createAttachmentSchema, input, 'attachment');
    const attachmentId = await this.inTransaction<string>(async (trx) => {
      const volume = await this.lockVolume(trx, request.volumeId);
      if (!volume) return { error: volumeNotFound(request.volumeId) };
      if (
        !volume.provider_location ||
        !['available', 'reserved', 'attaching', 'in-use'].includes(volume.status)
      ) {
        return {
          error: invalidVolume(
            `Volume ${volume.id} cannot be attached while its status is ${volume.status}.`,
            { volumeId: volume.id, status: volume.status },
          ),
        };
      }
      const connectionInfo: ConnectionInfo = { driverVolumeType: 'file', path: volume.provider_location };
      const connecting = {
        attach_status: 'attaching',
        attached_host: request.host,
        mountpoint: request.mountpoint ?? null,
        connection_info: JSON.stringify(connectionInfo),
      };
      const live = await this.liveAttachment(trx, volume.id);
      if (!live) {
        const created = await this.insertAttachment(trx, volume, request.instanceUuid, connecting);
        await this.setVolumeState(trx, volume.id, 'attaching', 'attaching');
        return { ok: created };
      }
      if (live.instance_uuid !== request.instanceUuid) return { error: this.otherInstance(volume, live) };
      if (live.attach_status === 'attached') {
        if (live.attached_host === request.host) return { ok: live.id };
        return {
          error: invalidVolume(`Volume ${volume.id} is already attached on host ${live.attached_host}.`, {
            volumeId: volume.id,
          }),
        };
      }
      // reserved, or attaching (possibly from another host after a reschedule): (re)connect.
      await trx
        .updateTable('volume_attachments')
        .set({ ...connecting, updated_at: this.clock.now() })
        .where('id', '=', live.id)
        .execute();
      await this.setVolumeState(trx, volume.id, 'attaching', 'attaching');
      return { ok: live.id };
    });
    const attachment = await this.getAttachment(attachmentId);
    if (!attachment.connectionInfo) throw attachmentNotFound(attachmentId);
    return { attachmentId, connectionInfo: attachment.connectionInfo, attachment };
  }

  /**
   * Cinder's attachment-update: the connector (the compute host) given to an attachment made by a reserve.
   * Unlike createAttachment it never makes a new attachment: one deleted meanwhile (a server delete that
   * detached it) is NotFound, so a late step of an attach cannot attach the volume again behind it.
   */
  async updateAttachment(attachmentId: string, host: string): Promise<AttachmentResult> {
    const id = parseRequest(idSchema, attachmentId, 'attachment id');
    const connector = parseRequest(hostSchema, host, 'connector host');
    await this.callFault('attachmentUpdate');
    await this.inTransaction<string>(async (trx) => {
      const attachment = await this.attachmentRow(trx, id);
      if (!attachment) return { error: attachmentNotFound(id) };
      const volume = await this.lockVolume(trx, attachment.volume_id);
      const current = await this.attachmentRow(trx, id);
      if (!volume || !current || current.attach_status === 'detached')
        return { error: attachmentNotFound(id) };
      if (current.attach_status === 'attached') {
        if (current.attached_host === connector) return { ok: id };
        return {
          error: invalidVolume(`Volume ${volume.id} is already attached on host ${current.attached_host}.`, {
            volumeId: volume.id,
          }),
        };
      }
      if (!volume.provider_location) {
        return {
          error: invalidVolume(`Volume ${volume.id} has no backing file to connect.`, {
            volumeId: volume.id,
          }),
        };
      }
      const connectionInfo: ConnectionInfo = { driverVolumeType: 'file', path: volume.provider_location };
      await trx
        .updateTable('volume_attachments')
        .set({
          attach_status: 'attaching',
          attached_host: connector,
          connection_info: JSON.stringify(connectionInfo),
          updated_at: this.clock.now(),
        })
        .where('id', '=', id)
        .execute();
      await this.setVolumeState(trx, volume.id, 'attaching', 'attaching');
      return { ok: id };
    });
    const attachment = await this.getAttachment(id);
    if (!attachment.connectionInfo) throw attachmentNotFound(id);
    return { attachmentId: id, connectionInfo: attachment.connectionInfo, attachment };
  }

  /**
   * os-begin_detaching: an `in-use` volume goes `detaching` while the host disconnects it, so a second detach
   * (or a delete) is refused meanwhile. Idempotent for a volume already detaching.
   */
  async beginDetaching(volumeId: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    await this.callFault('beginDetaching');
    await this.inTransaction<true>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      if (volume.status === 'detaching') return { ok: true };
      if (volume.status !== 'in-use' || volume.attach_status !== 'attached') {
        return {
          error: invalidVolume(
            `Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' ` +
              `to detach.`,
            { volumeId: id, status: volume.status },
          ),
        };
      }
      await this.setVolumeState(trx, id, 'detaching', 'attached');
      return { ok: true };
    });
    return this.getVolume(id);
  }

  /** os-roll_detaching: a detach that failed on the host puts the volume back `in-use`. A no-op otherwise. */
  async rollDetaching(volumeId: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    await this.inTransaction<true>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      if (volume.status === 'detaching' && (await this.liveAttachment(trx, id))) {
        await this.setVolumeState(trx, id, 'in-use', 'attached');
      }
      return { ok: true };
    });
    return this.getVolume(id);
  }

  private async attachmentRow(
    trx: Kysely<CinderDb>,
    id: string,
  ): Promise<VolumeAttachmentsTable | undefined> {
    return trx.selectFrom('volume_attachments').selectAll().where('id', '=', id).executeTakeFirst();
  }

  /**
   * The host connected the volume: attachment `attached`, volume `in-use`, with the guest's device as its
   * mountpoint when given (what `device` shows in the volume's attachments). Idempotent.
   */
  async completeAttachment(attachmentId: string, mountpoint?: string): Promise<Volume> {
    const id = parseRequest(idSchema, attachmentId, 'attachment id');
    const device = parseRequest(z.string().min(1).max(255).optional(), mountpoint, 'mountpoint');
    await this.callFault('attachmentComplete');
    const volumeId = await this.inTransaction<string>(async (trx) => {
      const locked = await this.lockAttachment(trx, id);
      if (!locked) return { error: attachmentNotFound(id) };
      const { volume, attachment: current } = locked;
      if (current.attach_status === 'attached') return { ok: volume.id };
      if (current.attach_status !== 'attaching') {
        return {
          error: invalidVolume(
            `Attachment ${id} is ${current.attach_status}; only an attaching attachment (connector given) ` +
              'can be completed.',
            { attachmentId: id, attachStatus: current.attach_status },
          ),
        };
      }
      const now = this.clock.now();
      await trx
        .updateTable('volume_attachments')
        .set({
          attach_status: 'attached',
          attach_time: now,
          updated_at: now,
          ...(device === undefined ? {} : { mountpoint: device }),
        })
        .where('id', '=', id)
        .execute();
      await this.setVolumeState(trx, volume.id, 'in-use', 'attached');
      return { ok: volume.id };
    });
    return this.getVolume(volumeId);
  }

  /**
   * Deletes the attachment (Cinder's attachment-delete): from reserved, attaching or attached, the volume
   * goes back to `available`, no longer deleted on any server's termination. Idempotent for an attachment
   * already detached.
   *
   * `keepDeleteOnTermination`: the detach is the server's delete (Nova's _delete_instance, which keeps the
   * block device mappings until the instance is destroyed): the volume keeps its delete_on_termination, so
   * a re-run of that delete interrupted before the volume delete still deletes it. A new attachment to
   * another instance drops it (insertAttachment).
   */
  async detachVolume(
    attachmentId: string,
    options: { keepDeleteOnTermination?: boolean } = {},
  ): Promise<Volume> {
    const id = parseRequest(idSchema, attachmentId, 'attachment id');
    const { keepDeleteOnTermination } = parseRequest(
      z.strictObject({ keepDeleteOnTermination: z.boolean().optional() }),
      options,
      'detach options',
    );
    const volumeId = await this.inTransaction<string>(async (trx) => {
      const locked = await this.lockAttachment(trx, id);
      if (!locked) return { error: attachmentNotFound(id) };
      const { volume, attachment: current } = locked;
      if (current.attach_status === 'detached') return { ok: volume.id };
      // The volume passes through `detaching` inside this one transaction; nobody sees it half done.
      await this.setVolumeState(trx, volume.id, 'detaching', 'detaching');
      const now = this.clock.now();
      await trx
        .updateTable('volume_attachments')
        .set({ attach_status: 'detached', active_volume_id: null, detach_time: now, updated_at: now })
        .where('id', '=', id)
        .execute();
      // Another attachment of the volume left (an evacuation's replacement, or the one it replaced): the
      // volume is that one's, in its state (Cinder keeps a volume with attachments left attached).
      const [rest] = await this.openAttachments(trx, volume.id);
      if (!rest) {
        await this.setVolumeState(trx, volume.id, 'available', 'detached');
        // delete_on_termination is the attaching server's (Nova's block device mapping, which a user's
        // detach destroys): kept, a later attach to another server would inherit it and its delete take the
        // volume. The server's own delete keeps it until the volume is deleted.
        if (!keepDeleteOnTermination) await this.recordDeleteOnTermination(trx, volume.id, false);
        return { ok: volume.id };
      }
      if (rest.active_volume_id === null) {
        await trx
          .updateTable('volume_attachments')
          .set({ active_volume_id: volume.id, updated_at: now })
          .where('id', '=', rest.id)
          .execute();
      }
      const [status, attachStatus] =
        rest.attach_status === 'attached' ? ['in-use', 'attached'] : [rest.attach_status, rest.attach_status];
      await this.setVolumeState(trx, volume.id, status, attachStatus);
      return { ok: volume.id };
    });
    return this.getVolume(volumeId);
  }

  // ---- Cinder's legacy attach actions (os-reserve, os-unreserve, os-attach, os-detach), without Nova ----

  /** os-reserve: an `available` volume goes `attaching` (no attachment yet); InvalidVolume otherwise. */
  async legacyReserve(volumeId: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    await this.inTransaction<true>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      if (volume.status !== 'available')
        return {
          error: invalidVolume(
            `Volume ${id} status must be available to reserve, but the status is ${volume.status}.`,
            { volumeId: id, status: volume.status },
          ),
        };
      await this.setVolumeState(trx, id, 'attaching', volume.attach_status);
      return { ok: true };
    });
    return this.getVolume(id);
  }

  /** os-unreserve: an `attaching` volume with no attachment goes back `available`; a no-op otherwise. */
  async legacyUnreserve(volumeId: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    await this.inTransaction<true>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      if (volume.status === 'attaching' && !(await this.liveAttachment(trx, id)))
        await this.setVolumeState(trx, id, 'available', 'detached');
      return { ok: true };
    });
    return this.getVolume(id);
  }

  /**
   * os-attach: records the volume attached to an instance at a mountpoint (an `available` or reserved
   * volume; attachment `attached`, volume `in-use`). Nothing connects it to a host: as in Cinder, whoever
   * calls it attaches the volume itself.
   */
  async legacyAttach(volumeId: string, instanceUuid: string, mountpoint: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    const instance = parseRequest(instanceUuidSchema, instanceUuid, 'instance uuid');
    const device = parseRequest(z.string().min(1).max(255), mountpoint, 'mountpoint');
    await this.inTransaction<true>(async (trx) => {
      const volume = await this.lockVolume(trx, id);
      if (!volume) return { error: volumeNotFound(id) };
      const live = await this.liveAttachment(trx, id);
      if (live) return { error: this.otherInstance(volume, live) };
      if (!['available', 'attaching'].includes(volume.status))
        return {
          error: invalidVolume(`Volume ${id} cannot be attached while its status is ${volume.status}.`, {
            volumeId: id,
            status: volume.status,
          }),
        };
      const attachment = await this.insertAttachment(trx, volume, instance, {
        attach_status: 'attached',
        attached_host: null,
        mountpoint: device,
        connection_info: null,
      });
      await trx
        .updateTable('volume_attachments')
        .set({ attach_time: this.clock.now() })
        .where('id', '=', attachment)
        .execute();
      await this.setVolumeState(trx, id, 'in-use', 'attached');
      return { ok: true };
    });
    return this.getVolume(id);
  }

  /** os-detach: the volume's live attachment (or the one named) is deleted, as detachVolume does. */
  async legacyDetach(volumeId: string, attachmentId?: string): Promise<Volume> {
    const id = parseRequest(idSchema, volumeId, 'volume id');
    const volume = await this.getVolume(id);
    const attachment =
      attachmentId === undefined
        ? volume.attachments[0]
        : volume.attachments.find((a) => a.id === attachmentId);
    if (!attachment)
      throw invalidVolume(`Volume ${id} must be attached in order to detach.`, { volumeId: id });
    return this.detachVolume(attachment.id);
  }

  async getAttachment(attachmentId: string): Promise<VolumeAttachment> {
    const id = parseRequest(idSchema, attachmentId, 'attachment id');
    const row = await this.db
      .selectFrom('volume_attachments')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) throw attachmentNotFound(id);
    return toAttachment(row);
  }

  /** Attachments by volume or instance; live ones only unless includeDetached. */
  async listAttachments(filter: z.input<typeof listAttachmentsSchema> = {}): Promise<VolumeAttachment[]> {
    const f = parseRequest(listAttachmentsSchema, filter, 'attachment filter');
    let query = this.db.selectFrom('volume_attachments').selectAll().orderBy('created_at').orderBy('id');
    if (f.volumeId !== undefined) query = query.where('volume_id', '=', f.volumeId);
    if (f.instanceUuid !== undefined) query = query.where('instance_uuid', '=', f.instanceUuid);
    if (!f.includeDetached) query = query.where('attach_status', '<>', 'detached');
    return (await query.execute()).map(toAttachment);
  }
}
