/**
 * Glance, the image service: image records in its own database, image data in a file store, Glance's
 * visibility rules and status machine (queued → saving → active ⇄ deactivated, → deleted).
 *
 * Calls that take `ctx` apply the rules for that caller. Administrative calls (create, upload, update,
 * deactivate, delete, members) may omit it: the cloud operator (bootstrap) acts with no project limits.
 */
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ExpressionBuilder, Kysely } from 'kysely';
import { systemClock, type Clock } from '../clock';
import { isUniqueViolation, openServiceDb, type DbConfig, type ServiceDb } from '../db';
import { CloudError, isCloudError } from '../errors';
import { parseRequest } from '../validation';
import { HashingMeter } from './hashing';
import { ImageFileStore } from './image-store';
import { Metadefs } from './metadefs';
import { glanceMigrations } from './migrations';
import { Tasks } from './tasks';
import {
  createImageSchema,
  imageIdSchema,
  imageRefSchema,
  listImagesSchema,
  MAX_IMAGE_MEMBERS,
  MAX_IMAGE_PROPERTIES,
  MAX_IMAGE_TAGS,
  memberStatusSchema,
  projectIdSchema,
  requestContextSchema,
  tagSchema,
  updateImageSchema,
  type CreateImageInput,
  type ListImagesFilter,
  type UpdateImageInput,
} from './requests';
import type { GlanceDb, ImageMembersTable, ImagesTable } from './schema';
import {
  OS_HASH_ALGO,
  type ContainerFormat,
  type DiskFormat,
  type Image,
  type ImageLocation,
  type ImageMember,
  type ImageRequestContext,
  type ImageStatus,
  type ImageVisibility,
  type MemberStatus,
  type ProgressCallback,
} from './types';
import type { WriteGenerations } from '../db-writes';

export interface GlanceOptions {
  db: DbConfig;
  /** Where the file store lives (default: the database config's dataDir). */
  dataDir?: string;
  clock?: Clock;
  /** Glance's `image_size_cap` (default 1 TiB). */
  imageSizeCapBytes?: number;
}

export type ImageData = Readable | Buffer | Uint8Array;

function isAdmin(ctx: ImageRequestContext): boolean {
  return ctx.roles.includes('admin');
}

/**
 * Glance's writes (add_image, modify_image, upload_image, delete_image, add_member, deactivate, ...) are
 * `role:admin or (role:member and project_id:%(project_id)s)`: a reader may look, not change.
 */
function requireWriter(ctx: ImageRequestContext | undefined, action: string): void {
  if (ctx && !isAdmin(ctx) && !ctx.roles.includes('member'))
    throw new CloudError('Forbidden', `You are not authorized to complete ${action} action.`);
}

function limitExceeded(what: string, attempted: number, maximum: number): CloudError {
  return new CloudError(
    'ImageLimitExceeded',
    `The limit has been exceeded on the number of allowed image ${what}. Attempted: ${attempted}, Maximum: ${maximum}`,
  );
}

function notFound(ref: string): CloudError {
  return new CloudError('NotFound', `No image found with ID or name '${ref}'`, { image: ref });
}

function toImage(row: ImagesTable, properties: Record<string, string>, tags: string[]): Image {
  const num = (v: number | null) => (v === null ? null : Number(v));
  return {
    id: row.id,
    name: row.name,
    status: row.status as ImageStatus,
    diskFormat: (row.disk_format ?? null) as DiskFormat | null,
    containerFormat: (row.container_format ?? null) as ContainerFormat | null,
    size: num(row.size),
    virtualSize: num(row.virtual_size),
    checksum: row.checksum,
    osHashAlgo: row.os_hash_algo,
    osHashValue: row.os_hash_value,
    visibility: row.visibility as ImageVisibility,
    owner: row.owner,
    minDisk: Number(row.min_disk),
    minRam: Number(row.min_ram),
    protected: Number(row.protected) === 1,
    osHidden: Number(row.os_hidden) === 1,
    tags,
    properties,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

function toMember(row: ImageMembersTable): ImageMember {
  return {
    imageId: row.image_id,
    memberId: row.member,
    status: row.status as MemberStatus,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

export class Glance {
  /** The metadata definitions catalog (/v2/metadefs), in Glance's database. */
  readonly metadefs: Metadefs;
  /** The tasks API's records (/v2/tasks): nothing runs them (tasks.ts). */
  readonly tasks: Tasks;

  private constructor(
    private readonly store: ServiceDb<GlanceDb>,
    private readonly files: ImageFileStore,
    private readonly clock: Clock,
    private readonly imageSizeCap: number,
  ) {
    this.metadefs = new Metadefs(store, clock);
    this.tasks = new Tasks(store, clock);
  }

  /** The tables this process has written (cloud/db-writes.ts), for readers that keep what they read. */
  get writes(): WriteGenerations {
    return this.store.writes;
  }

  static async open(options: GlanceOptions): Promise<Glance> {
    const files = await ImageFileStore.open(options.dataDir ?? options.db.dataDir);
    const store = await openServiceDb<GlanceDb>('glance', glanceMigrations, options.db);
    return new Glance(store, files, options.clock ?? systemClock, options.imageSizeCapBytes ?? 2 ** 40);
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  /** Glance's image_size_cap: the most image data one upload may bring. */
  get imageSizeCapBytes(): number {
    return this.imageSizeCap;
  }

  private get db(): Kysely<GlanceDb> {
    return this.store.db;
  }

  // ---- images -------------------------------------------------------------------------------------------

  /** Creates an image record in `queued`. With an explicit id, a repeat returns the first image. */
  async createImage(input: CreateImageInput, ctx?: ImageRequestContext): Promise<Image> {
    const caller = this.parseContext(ctx);
    const req = parseRequest(createImageSchema, input, 'image');
    requireWriter(caller, 'add_image');
    if (caller && !isAdmin(caller)) {
      if (req.ownerProjectId !== caller.projectId)
        throw new CloudError(
          'Forbidden',
          `You are not permitted to create images owned by '${req.ownerProjectId}'.`,
        );
      if (req.visibility === 'public')
        throw new CloudError('Forbidden', 'You are not authorized to complete publicize_image action.');
    }
    if (req.tags.length > MAX_IMAGE_TAGS) throw limitExceeded('tags', req.tags.length, MAX_IMAGE_TAGS);
    const id = req.id ?? randomUUID();
    const now = this.clock.now();
    try {
      await this.store.transaction(async (trx) => {
        await trx
          .insertInto('images')
          .values({
            id,
            name: req.name,
            status: 'queued',
            disk_format: req.diskFormat,
            container_format: req.containerFormat,
            size: null,
            virtual_size: null,
            checksum: null,
            os_hash_algo: null,
            os_hash_value: null,
            visibility: req.visibility,
            owner: req.ownerProjectId,
            min_disk: req.minDisk,
            min_ram: req.minRam,
            protected: req.protected ? 1 : 0,
            os_hidden: req.osHidden ? 1 : 0,
            created_at: now,
            updated_at: now,
            deleted_at: null,
          })
          .execute();
        const props = Object.entries(req.properties).map(([name, value]) => ({ image_id: id, name, value }));
        if (props.length) await trx.insertInto('image_properties').values(props).execute();
        const tags = req.tags.map((value) => ({ image_id: id, value }));
        if (tags.length) await trx.insertInto('image_tags').values(tags).execute();
      });
    } catch (err) {
      if (!req.id || !isUniqueViolation(err)) throw err;
    }
    const row = await this.row(id);
    const same =
      row &&
      row.status !== 'deleted' &&
      row.owner === req.ownerProjectId &&
      row.name === req.name &&
      row.disk_format === req.diskFormat &&
      row.container_format === req.containerFormat;
    if (!same) throw new CloudError('Conflict', `Image ID ${id} already exists`, { image: id });
    return this.withProperties(row);
  }

  /**
   * Streams the image data into the store (queued → saving → active), computing size, MD5 and SHA-512 in one
   * pass and checking that the data matches the disk format. On failure the image goes back to queued and
   * no data is kept.
   */
  async uploadImageData(
    imageId: string,
    data: ImageData,
    options: { ctx?: ImageRequestContext; onProgress?: ProgressCallback } = {},
  ): Promise<Image> {
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const source = toReadable(data);
    let row: ImagesTable;
    try {
      const caller = this.parseContext(options.ctx);
      requireWriter(caller, 'upload_image');
      row = await this.ownedRow(id, caller);
    } catch (err) {
      // A refused upload still releases the request body it was handed.
      source.destroy();
      throw err;
    }
    const missing = (['disk_format', 'container_format'] as const).filter((k) => row[k] === null);
    if (missing.length && row.status === 'queued') {
      source.destroy();
      throw new CloudError(
        'BadRequest',
        `${missing.length === 1 ? 'Property' : 'Properties'} ${missing.join(', ')} must be set prior to saving data.`,
        { image: id },
      );
    }
    const moved = await this.db
      .updateTable('images')
      .set({ status: 'saving', updated_at: this.clock.now() })
      .where('id', '=', id)
      .where('status', '=', 'queued')
      .executeTakeFirst();
    if (Number(moved.numUpdatedRows) !== 1) {
      source.destroy();
      const status = (await this.row(id))?.status ?? row.status;
      throw new CloudError(
        'Conflict',
        `Image ${id} is ${status}; data can only be uploaded to a queued image`,
        {
          image: id,
          status,
        },
      );
    }
    let received;
    try {
      received = await this.files.receive(id, source, {
        diskFormat: row.disk_format ?? 'raw',
        maxBytes: this.imageSizeCap,
        onProgress: options.onProgress,
      });
    } catch (err) {
      await this.setStatus(id, 'saving', 'queued');
      if (isCloudError(err)) throw err;
      throw new CloudError('ServiceUnavailable', `Upload of image ${id} failed: ${(err as Error).message}`);
    }
    // Rename first: if the image was deleted meanwhile, the guarded update below fails and we remove the file.
    await this.files.commit(received, id);
    const done = await this.db
      .updateTable('images')
      .set({
        status: 'active',
        size: received.size,
        virtual_size: received.virtualSize,
        checksum: received.checksum,
        os_hash_algo: OS_HASH_ALGO,
        os_hash_value: received.osHashValue,
        updated_at: this.clock.now(),
      })
      .where('id', '=', id)
      .where('status', '=', 'saving')
      .executeTakeFirst();
    if (Number(done.numUpdatedRows) !== 1) {
      await this.files.remove(id);
      throw new CloudError('Conflict', `Image ${id} was deleted while its data was uploaded`, { image: id });
    }
    return this.withProperties(await this.requireRow(id));
  }

  /** An image by id or (unique) name, if `ctx` may see it; another project's private image is NotFound. */
  async getImage(idOrName: string, ctx: ImageRequestContext): Promise<Image> {
    const caller = this.requireContext(ctx);
    const ref = parseRequest(imageRefSchema, idOrName, 'image id or name');
    const byId = imageIdSchema.safeParse(ref).success ? await this.row(ref) : undefined;
    if (byId && byId.status !== 'deleted' && (await this.visible(byId, caller)))
      return this.withProperties(byId);
    const named = await this.db
      .selectFrom('images')
      .selectAll()
      .where('name', '=', ref)
      .where('status', '<>', 'deleted')
      .execute();
    const visible = [];
    for (const row of named) if (await this.visible(row, caller)) visible.push(row);
    if (visible.length > 1)
      throw new CloudError('BadRequest', `More than one image is named '${ref}'; use the image ID`, {
        image: ref,
      });
    if (!visible[0]) throw notFound(ref);
    return this.withProperties(visible[0]);
  }

  /**
   * Images `ctx` may list: its own, public ones, shared ones it accepted; community images only when asked
   * for with `visibility: 'community'` (as Glance lists them).
   */
  async listImages(ctx: ImageRequestContext, filter: ListImagesFilter = {}): Promise<Image[]> {
    const caller = this.requireContext(ctx);
    const f = parseRequest(listImagesSchema, filter, 'image filter');
    let query = this.db.selectFrom('images').selectAll().where('status', '<>', 'deleted');
    if (f.name !== undefined) query = query.where('name', '=', f.name);
    if (f.status !== undefined) query = query.where('status', '=', f.status);
    if (f.visibility !== undefined) query = query.where('visibility', '=', f.visibility);
    if (f.owner !== undefined) query = query.where('owner', '=', f.owner);
    query = query.where('os_hidden', '=', f.osHidden ? 1 : 0);
    if (f.protected !== undefined) query = query.where('protected', '=', f.protected ? 1 : 0);
    if (f.diskFormat !== undefined) query = query.where('disk_format', '=', f.diskFormat);
    if (f.containerFormat !== undefined) query = query.where('container_format', '=', f.containerFormat);
    if (f.size !== undefined) query = query.where('size', '=', f.size);
    if (f.minRam !== undefined) query = query.where('min_ram', '=', f.minRam);
    if (f.minDisk !== undefined) query = query.where('min_disk', '=', f.minDisk);
    if (f.checksum !== undefined) query = query.where('checksum', '=', f.checksum);
    if (f.osHashValue !== undefined) query = query.where('os_hash_value', '=', f.osHashValue);
    for (const [name, value] of Object.entries(f.properties ?? {}))
      query = query.where((eb: ExpressionBuilder<GlanceDb, 'images'>) =>
        eb.exists(
          eb
            .selectFrom('image_properties')
            .select('image_properties.image_id')
            .whereRef('image_properties.image_id', '=', 'images.id')
            .where('image_properties.name', '=', name)
            .where('image_properties.value', '=', value),
        ),
      );
    if (f.sizeMin !== undefined) query = query.where('size', '>=', f.sizeMin);
    if (f.sizeMax !== undefined) query = query.where('size', '<=', f.sizeMax);
    for (const tag of f.tags ?? [])
      query = query.where((eb: ExpressionBuilder<GlanceDb, 'images'>) =>
        eb.exists(
          eb
            .selectFrom('image_tags')
            .select('image_tags.image_id')
            .whereRef('image_tags.image_id', '=', 'images.id')
            .where('image_tags.value', '=', tag),
        ),
      );
    if (!isAdmin(caller)) {
      const memberStatus = f.memberStatus;
      query = query.where((eb: ExpressionBuilder<GlanceDb, 'images'>) =>
        eb.or([
          eb('owner', '=', caller.projectId),
          eb('visibility', '=', 'public'),
          ...(f.visibility === 'community' ? [eb('visibility', '=', 'community')] : []),
          eb.and([
            eb('visibility', '=', 'shared'),
            eb.exists(
              memberStatus === 'all'
                ? eb
                    .selectFrom('image_members')
                    .select('image_members.image_id')
                    .whereRef('image_members.image_id', '=', 'images.id')
                    .where('image_members.member', '=', caller.projectId)
                : eb
                    .selectFrom('image_members')
                    .select('image_members.image_id')
                    .whereRef('image_members.image_id', '=', 'images.id')
                    .where('image_members.member', '=', caller.projectId)
                    .where('image_members.status', '=', memberStatus),
            ),
          ]),
        ]),
      );
    }
    const rows = await query.orderBy('created_at').orderBy('id').execute();
    return this.withPropertiesMany(rows);
  }

  /**
   * Changes an image's attributes, tags and extra properties in one transaction (what Glance's PATCH saves).
   * Glance's rules: only an admin publicizes or changes the owner; formats change only while queued.
   */
  async updateImage(imageId: string, patch: UpdateImageInput, ctx?: ImageRequestContext): Promise<Image> {
    const caller = this.parseContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const req = parseRequest(updateImageSchema, patch, 'image update');
    requireWriter(caller, 'modify_image');
    if (caller && !isAdmin(caller)) {
      if (req.visibility === 'public')
        throw new CloudError('Forbidden', 'You are not authorized to complete publicize_image action.');
      if (req.owner !== undefined) throw new CloudError('Forbidden', "Owner can't be updated by non admin.");
    }
    const row = await this.ownedRow(id, caller);
    for (const [key, column] of [
      ['containerFormat', 'container_format'],
      ['diskFormat', 'disk_format'],
    ] as const)
      if (req[key] !== undefined && row.status !== 'queued')
        throw new CloudError('Forbidden', `Attribute ${column} can be only replaced for a queued image.`, {
          image: id,
        });
    if (req.tags && req.tags.length > MAX_IMAGE_TAGS)
      throw limitExceeded('tags', req.tags.length, MAX_IMAGE_TAGS);
    await this.store.transaction(async (trx) => {
      await trx
        .updateTable('images')
        .set({
          ...(req.name !== undefined && { name: req.name }),
          ...(req.visibility !== undefined && { visibility: req.visibility }),
          ...(req.minDisk !== undefined && { min_disk: req.minDisk }),
          ...(req.minRam !== undefined && { min_ram: req.minRam }),
          ...(req.protected !== undefined && { protected: req.protected ? 1 : 0 }),
          ...(req.osHidden !== undefined && { os_hidden: req.osHidden ? 1 : 0 }),
          ...(req.diskFormat !== undefined && { disk_format: req.diskFormat }),
          ...(req.containerFormat !== undefined && { container_format: req.containerFormat }),
          ...(req.owner !== undefined && { owner: req.owner }),
          updated_at: this.clock.now(),
        })
        .where('id', '=', id)
        // A format set while queued must not land on an image whose upload began meanwhile.
        .where((eb) =>
          req.diskFormat !== undefined || req.containerFormat !== undefined
            ? eb('status', '=', 'queued')
            : eb('status', '<>', 'deleted'),
        )
        .executeTakeFirst()
        .then((res) => {
          if (Number(res.numUpdatedRows) !== 1)
            throw new CloudError('Conflict', `Image ${id} changed status during the update`, { image: id });
        });
      for (const [name, value] of Object.entries(req.properties ?? {})) {
        await trx
          .deleteFrom('image_properties')
          .where('image_id', '=', id)
          .where('name', '=', name)
          .execute();
        if (value !== null)
          await trx.insertInto('image_properties').values({ image_id: id, name, value }).execute();
      }
      const count = await trx
        .selectFrom('image_properties')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('image_id', '=', id)
        .executeTakeFirstOrThrow();
      if (Number(count.n) > MAX_IMAGE_PROPERTIES)
        throw limitExceeded('properties', Number(count.n), MAX_IMAGE_PROPERTIES);
      if (req.tags) await this.replaceTags(trx, id, req.tags);
    });
    return this.withProperties(await this.requireRow(id));
  }

  /** The image and tag of a tag change, once the caller may modify that image. */
  private async tagTarget(
    imageId: string,
    tag: string,
    ctx: ImageRequestContext | undefined,
  ): Promise<{ id: string; value: string }> {
    const caller = this.parseContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const value = parseRequest(tagSchema, tag, 'image tag');
    requireWriter(caller, 'modify_image');
    await this.ownedRow(id, caller);
    return { id, value };
  }

  /** Glance's PUT /tags/{tag}: adds a tag (again is fine), within image_tag_quota. */
  async addImageTag(imageId: string, tag: string, ctx?: ImageRequestContext): Promise<Image> {
    const { id, value } = await this.tagTarget(imageId, tag, ctx);
    await this.store.transaction(async (trx) => {
      const tags = await this.tagsOf(trx, id);
      if (!tags.includes(value)) await this.replaceTags(trx, id, [...tags, value]);
      await trx.updateTable('images').set({ updated_at: this.clock.now() }).where('id', '=', id).execute();
    });
    return this.withProperties(await this.requireRow(id));
  }

  /** Glance's DELETE /tags/{tag}: NotFound when the image does not carry it. */
  async removeImageTag(imageId: string, tag: string, ctx?: ImageRequestContext): Promise<Image> {
    const { id, value } = await this.tagTarget(imageId, tag, ctx);
    await this.store.transaction(async (trx) => {
      const res = await trx
        .deleteFrom('image_tags')
        .where('image_id', '=', id)
        .where('value', '=', value)
        .executeTakeFirst();
      if (Number(res.numDeletedRows) !== 1) throw new CloudError('NotFound', `Tag ${value} not found`);
      await trx.updateTable('images').set({ updated_at: this.clock.now() }).where('id', '=', id).execute();
    });
    return this.withProperties(await this.requireRow(id));
  }

  /** active → deactivated: the record stays, the data cannot be downloaded. Repeating it is fine. */
  async deactivateImage(imageId: string, ctx?: ImageRequestContext): Promise<Image> {
    return this.transition(imageId, ctx, 'active', 'deactivated');
  }

  async reactivateImage(imageId: string, ctx?: ImageRequestContext): Promise<Image> {
    return this.transition(imageId, ctx, 'deactivated', 'active');
  }

  /** Marks the image deleted and removes its data. Deleting a deleted image again is a no-op. */
  async deleteImage(imageId: string, ctx?: ImageRequestContext): Promise<void> {
    const caller = this.parseContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const row = await this.row(id);
    if (row?.status === 'deleted') {
      if (caller && !isAdmin(caller) && row.owner !== caller.projectId) throw notFound(id);
      return;
    }
    requireWriter(caller, 'delete_image');
    const owned = await this.ownedRow(id, caller);
    if (Number(owned.protected) === 1)
      throw new CloudError('Forbidden', `Image ${id} is protected and cannot be deleted.`, { image: id });
    const now = this.clock.now();
    await this.db
      .updateTable('images')
      .set({ status: 'deleted', deleted_at: now, updated_at: now })
      .where('id', '=', id)
      .where('status', '<>', 'deleted')
      .where('protected', '=', 0)
      .execute();
    await this.files.remove(id);
  }

  /**
   * What a compute host needs to download and verify the image without this database. Reads the record
   * again, so a stale Image object cannot hand out data of a deactivated or deleted image.
   */
  async imageLocation(image: Image | string): Promise<ImageLocation> {
    const id = parseRequest(imageIdSchema, typeof image === 'string' ? image : image?.id, 'image id');
    const row = await this.row(id);
    if (!row || row.status === 'deleted') throw notFound(id);
    const ready = this.activeData(row);
    return {
      imageId: row.id,
      url: this.files.urlOf(row.id),
      size: ready.size,
      checksum: ready.checksum,
      osHashAlgo: OS_HASH_ALGO,
      osHashValue: ready.osHashValue,
      diskFormat: row.disk_format as DiskFormat,
      virtualSize: row.virtual_size === null ? null : Number(row.virtual_size),
    };
  }

  /** The image's data as a stream that fails with ImageChecksumMismatch at the end if the data is corrupt. */
  async openImageData(
    imageId: string,
    ctx: ImageRequestContext,
    options: { onProgress?: ProgressCallback } = {},
  ): Promise<Readable> {
    const image = await this.getImage(parseRequest(imageIdSchema, imageId, 'image id'), ctx);
    const row = await this.requireRow(image.id);
    // Glance: a deactivated image's data is for admins only (compute hosts go through imageLocation,
    // which refuses it to everyone).
    if (row.status === 'deactivated' && !isAdmin(ctx))
      throw new CloudError(
        'Forbidden',
        'The requested image has been deactivated. Image data download is forbidden.',
        { image: row.id },
      );
    const expected = this.activeData(row.status === 'deactivated' ? { ...row, status: 'active' } : row);
    const meter = new HashingMeter({ expected, bytesTotal: expected.size, onProgress: options.onProgress });
    pipeline(this.files.openRead(image.id), meter).catch((err: unknown) => meter.destroy(err as Error));
    return meter;
  }

  // ---- members (shared images) --------------------------------------------------------------------------

  /** Shares a `shared` image with another project (pending until that project accepts). Idempotent. */
  async addImageMember(
    imageId: string,
    memberProjectId: string,
    ctx?: ImageRequestContext,
  ): Promise<ImageMember> {
    const caller = this.parseContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const member = parseRequest(projectIdSchema, memberProjectId, 'member project id');
    requireWriter(caller, 'add_member');
    const row = await this.ownedRow(id, caller);
    if (row.visibility !== 'shared')
      throw new CloudError('Forbidden', 'Only shared images have members.', { image: id });
    const now = this.clock.now();
    try {
      await this.store.transaction(async (trx) => {
        const count = await trx
          .selectFrom('image_members')
          .select((eb) => eb.fn.countAll().as('n'))
          .where('image_id', '=', id)
          .executeTakeFirstOrThrow();
        if (Number(count.n) >= MAX_IMAGE_MEMBERS)
          throw limitExceeded('members', Number(count.n) + 1, MAX_IMAGE_MEMBERS);
        await trx
          .insertInto('image_members')
          .values({ image_id: id, member, status: 'pending', created_at: now, updated_at: now })
          .execute();
      });
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw new CloudError('Conflict', `Member ${member} is duplicated for image ${id}`, { image: id });
    }
    return toMember(await this.memberRow(id, member));
  }

  /** The member project accepts or rejects a shared image. */
  async updateImageMember(
    imageId: string,
    memberProjectId: string,
    status: MemberStatus,
    ctx: ImageRequestContext,
  ): Promise<ImageMember> {
    const caller = this.requireContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const member = parseRequest(projectIdSchema, memberProjectId, 'member project id');
    const newStatus = parseRequest(memberStatusSchema, status, 'member status');
    const row = await this.row(id);
    if (!row || row.status === 'deleted' || !(await this.visible(row, caller))) throw notFound(id);
    if (row.visibility !== 'shared')
      throw new CloudError('Forbidden', 'Only shared images have members.', { image: id });
    // modify_member: `role:admin or (role:member and project_id:%(member_id)s)`: the owner cannot.
    if (!isAdmin(caller) && (caller.projectId !== member || !caller.roles.includes('member')))
      throw new CloudError('Forbidden', `Not allowed to update members for image ${id}.`, { image: id });
    const res = await this.db
      .updateTable('image_members')
      .set({ status: newStatus, updated_at: this.clock.now() })
      .where('image_id', '=', id)
      .where('member', '=', member)
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) !== 1)
      throw new CloudError('NotFound', `${member} not found in the member list of the image ${id}.`);
    return toMember(await this.memberRow(id, member));
  }

  async removeImageMember(
    imageId: string,
    memberProjectId: string,
    ctx?: ImageRequestContext,
  ): Promise<void> {
    const caller = this.parseContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const member = parseRequest(projectIdSchema, memberProjectId, 'member project id');
    requireWriter(caller, 'delete_member');
    const row = await this.ownedRow(id, caller);
    if (row.visibility !== 'shared')
      throw new CloudError('Forbidden', 'Only shared images have members.', { image: id });
    const res = await this.db
      .deleteFrom('image_members')
      .where('image_id', '=', id)
      .where('member', '=', member)
      .executeTakeFirst();
    if (Number(res.numDeletedRows) !== 1)
      throw new CloudError('NotFound', `${member} not found in the member list of the image ${id}.`);
  }

  /** One membership, as the owner or that member sees it. */
  async getImageMember(
    imageId: string,
    memberProjectId: string,
    ctx: ImageRequestContext,
  ): Promise<ImageMember> {
    const member = parseRequest(projectIdSchema, memberProjectId, 'member project id');
    const found = (await this.listImageMembers(imageId, ctx)).find((m) => m.memberId === member);
    if (!found)
      throw new CloudError('NotFound', `${member} not found in the member list of the image ${imageId}.`);
    return found;
  }

  /** The owner sees every member; a member sees only its own membership. */
  async listImageMembers(imageId: string, ctx: ImageRequestContext): Promise<ImageMember[]> {
    const caller = this.requireContext(ctx);
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const row = await this.row(id);
    if (!row || row.status === 'deleted' || !(await this.visible(row, caller))) throw notFound(id);
    if (row.visibility !== 'shared')
      throw new CloudError('Forbidden', 'Only shared images have members.', { image: id });
    let query = this.db.selectFrom('image_members').selectAll().where('image_id', '=', id);
    if (!isAdmin(caller) && row.owner !== caller.projectId)
      query = query.where('member', '=', caller.projectId);
    return (await query.orderBy('member').execute()).map(toMember);
  }

  // ---- internals ----------------------------------------------------------------------------------------

  private async tagsOf(trx: Kysely<GlanceDb>, id: string): Promise<string[]> {
    const rows = await trx.selectFrom('image_tags').select('value').where('image_id', '=', id).execute();
    return rows.map((r) => r.value);
  }

  private async replaceTags(trx: Kysely<GlanceDb>, id: string, tags: string[]): Promise<void> {
    const unique = [...new Set(tags)];
    if (unique.length > MAX_IMAGE_TAGS) throw limitExceeded('tags', unique.length, MAX_IMAGE_TAGS);
    await trx.deleteFrom('image_tags').where('image_id', '=', id).execute();
    if (unique.length)
      await trx
        .insertInto('image_tags')
        .values(unique.map((value) => ({ image_id: id, value })))
        .execute();
  }

  private parseContext(ctx: ImageRequestContext | undefined): ImageRequestContext | undefined {
    return ctx === undefined ? undefined : parseRequest(requestContextSchema, ctx, 'request context');
  }

  private requireContext(ctx: ImageRequestContext): ImageRequestContext {
    return parseRequest(requestContextSchema, ctx, 'request context');
  }

  private async row(id: string): Promise<ImagesTable | undefined> {
    return this.db.selectFrom('images').selectAll().where('id', '=', id).executeTakeFirst();
  }

  private async requireRow(id: string): Promise<ImagesTable> {
    const row = await this.row(id);
    if (!row) throw notFound(id);
    return row;
  }

  private async memberRow(id: string, member: string): Promise<ImageMembersTable> {
    return this.db
      .selectFrom('image_members')
      .selectAll()
      .where('image_id', '=', id)
      .where('member', '=', member)
      .executeTakeFirstOrThrow();
  }

  /** Glance's is_image_visible: admin, owner, public/community, or a member of a shared image. */
  private async visible(row: ImagesTable, ctx: ImageRequestContext): Promise<boolean> {
    if (isAdmin(ctx) || row.owner === ctx.projectId) return true;
    if (row.visibility === 'public' || row.visibility === 'community') return true;
    if (row.visibility !== 'shared') return false;
    const member = await this.db
      .selectFrom('image_members')
      .select('status')
      .where('image_id', '=', row.id)
      .where('member', '=', ctx.projectId)
      .executeTakeFirst();
    return member !== undefined;
  }

  /** The image, if `ctx` (or the operator, when absent) may change it: NotFound if unseen, else Forbidden. */
  private async ownedRow(id: string, ctx: ImageRequestContext | undefined): Promise<ImagesTable> {
    const row = await this.row(id);
    if (!row || row.status === 'deleted') throw notFound(id);
    if (!ctx || isAdmin(ctx) || row.owner === ctx.projectId) return row;
    if (await this.visible(row, ctx))
      throw new CloudError('Forbidden', `Image ${id} belongs to another project`, { image: id });
    throw notFound(id);
  }

  private activeData(row: ImagesTable): { size: number; checksum: string; osHashValue: string } {
    if (row.status === 'deactivated')
      throw new CloudError(
        'ImageNotActive',
        `Image ${row.id} is deactivated; its data cannot be downloaded`,
        {
          image: row.id,
          status: row.status,
        },
      );
    if (row.status !== 'active' || row.size === null || !row.checksum || !row.os_hash_value)
      throw new CloudError('ImageNotActive', `Image ${row.id} is ${row.status}, not active`, {
        image: row.id,
        status: row.status,
      });
    return { size: Number(row.size), checksum: row.checksum, osHashValue: row.os_hash_value };
  }

  private async transition(
    imageId: string,
    ctx: ImageRequestContext | undefined,
    from: ImageStatus,
    to: ImageStatus,
  ): Promise<Image> {
    const id = parseRequest(imageIdSchema, imageId, 'image id');
    const caller = this.parseContext(ctx);
    const action = to === 'deactivated' ? 'deactivate' : 'reactivate';
    requireWriter(caller, action);
    const row = await this.ownedRow(id, caller);
    if (row.status !== to && !(await this.setStatus(id, from, to))) {
      const status = (await this.requireRow(id)).status;
      // Glance's domain: Forbidden, "Not allowed to deactivate image in status 'queued'".
      if (status !== to)
        throw new CloudError('Forbidden', `Not allowed to ${action} image in status '${status}'`, {
          image: id,
          status,
        });
    }
    return this.withProperties(await this.requireRow(id));
  }

  private async setStatus(id: string, from: ImageStatus, to: ImageStatus): Promise<boolean> {
    const res = await this.db
      .updateTable('images')
      .set({ status: to, updated_at: this.clock.now() })
      .where('id', '=', id)
      .where('status', '=', from)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) === 1;
  }

  private async withProperties(row: ImagesTable): Promise<Image> {
    const [image] = await this.withPropertiesMany([row]);
    return image as Image;
  }

  private async withPropertiesMany(rows: ImagesTable[]): Promise<Image[]> {
    if (rows.length === 0) return [];
    const props = await this.db
      .selectFrom('image_properties')
      .selectAll()
      .where(
        'image_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('name')
      .execute();
    const byImage = new Map<string, Record<string, string>>();
    for (const p of props) {
      const record = byImage.get(p.image_id) ?? {};
      record[p.name] = p.value;
      byImage.set(p.image_id, record);
    }
    const tags = await this.db
      .selectFrom('image_tags')
      .selectAll()
      .where(
        'image_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('value')
      .execute();
    const tagsByImage = new Map<string, string[]>();
    for (const t of tags) tagsByImage.set(t.image_id, [...(tagsByImage.get(t.image_id) ?? []), t.value]);
    return rows.map((row) => toImage(row, byImage.get(row.id) ?? {}, tagsByImage.get(row.id) ?? []));
  }
}

function toReadable(data: ImageData): Readable {
  if (data instanceof Readable) return data;
  if (data instanceof Uint8Array)
    return Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
  throw new CloudError('BadRequest', 'Image data must be a Readable stream or a Buffer');
}
