/**
 * The cinder database, after Cinder's volumes and volume_attachment tables. The request key makes creation
 * idempotent; active_volume_id (unique, NULL once detached) keeps volumes single-attach in the database.
 */
import { sql, type Kysely, type Migration } from 'kysely';

const ID = 'varchar(36)';

export const cinderMigrations: Record<string, Migration> = {
  '001_volumes': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('volumes')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('user_id', 'varchar(64)')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(32)', (c) => c.notNull())
        .addColumn('attach_status', 'varchar(32)', (c) => c.notNull())
        .addColumn('bootable', 'integer', (c) => c.notNull())
        .addColumn('image_id', 'varchar(64)')
        .addColumn('image_metadata', 'text')
        .addColumn('backend', 'varchar(64)', (c) => c.notNull())
        .addColumn('provider_location', 'varchar(1024)')
        .addColumn('error_message', 'text')
        .addColumn('request_key', 'varchar(255)', (c) => c.notNull().unique())
        .addColumn('deleted', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema
        .createIndex('volumes_project_idx')
        .on('volumes')
        .columns(['project_id', 'deleted'])
        .execute();
      await db.schema.createIndex('volumes_status_idx').on('volumes').column('status').execute();

      await db.schema
        .createTable('volume_attachments')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('volume_id', ID, (c) => c.notNull().references('volumes.id'))
        .addColumn('instance_uuid', ID, (c) => c.notNull())
        .addColumn('attached_host', 'varchar(255)')
        .addColumn('mountpoint', 'varchar(255)')
        .addColumn('attach_status', 'varchar(32)', (c) => c.notNull())
        .addColumn('connection_info', 'text')
        .addColumn('active_volume_id', ID, (c) => c.unique())
        .addColumn('attach_time', 'bigint')
        .addColumn('detach_time', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('volume_attachments_volume_idx')
        .on('volume_attachments')
        .column('volume_id')
        .execute();
      await db.schema
        .createIndex('volume_attachments_instance_idx')
        .on('volume_attachments')
        .column('instance_uuid')
        .execute();
    },
  },
  /**
   * Who runs a volume's creation (`<pid>@<host>/<instance>`) and from which image, so that a creation whose
   * process died (killed, restarted) is taken over by the next Cinder to open instead of staying `creating`.
   */
  '002_creation_worker': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('volumes').addColumn('creation_worker', 'varchar(255)').execute();
      await db.schema.alterTable('volumes').addColumn('image_source', 'text').execute();
    },
  },
  /**
   * Whether the volume goes when the server it boots goes (Nova's block_device_mapping
   * delete_on_termination, which the embedded Nova has no table for). Volumes created before this kept the
   * flag in their request key (`<instance>:root:delete`); it is carried over.
   */
  '003_delete_on_termination': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('volumes')
        .addColumn('delete_on_termination', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await sql`update volumes set delete_on_termination = 1 where request_key like ${'%:root:delete'}`.execute(
        db,
      );
    },
  },
  /**
   * Cinder's volume description and user metadata (its volume_metadata table: one row per key, deleted with
   * the volume), and the `readonly` flag Cinder keeps in its admin metadata (NULL: never set).
   */
  '004_description_metadata': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('volumes').addColumn('description', 'varchar(255)').execute();
      await db.schema.alterTable('volumes').addColumn('readonly', 'integer').execute();
      await db.schema
        .createTable('volume_metadata')
        .addColumn('volume_id', ID, (c) => c.notNull().references('volumes.id').onDelete('cascade'))
        .addColumn('key', 'varchar(255)', (c) => c.notNull())
        .addColumn('value', 'varchar(255)', (c) => c.notNull())
        .addPrimaryKeyConstraint('volume_metadata_pk', ['volume_id', 'key'])
        .execute();
    },
  },
  /**
   * Cinder's snapshots and snapshot_metadata tables (a snapshot is a copy of its volume's file, so it outlives
   * nothing: a volume is deleted only with its snapshots), the Cinder running a snapshot's creation or
   * deletion (taken over when it dies, as for volumes), and the snapshot a volume was created from.
   */
  '005_snapshots': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('snapshots')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('volume_id', ID, (c) => c.notNull().references('volumes.id'))
        .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('user_id', 'varchar(64)')
        .addColumn('name', 'varchar(255)')
        .addColumn('description', 'varchar(255)')
        .addColumn('size', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(32)', (c) => c.notNull())
        .addColumn('progress', 'varchar(255)', (c) => c.notNull())
        .addColumn('provider_location', 'varchar(1024)')
        .addColumn('error_message', 'text')
        .addColumn('worker', 'varchar(255)')
        .addColumn('deleted', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema.createIndex('snapshots_volume_idx').on('snapshots').column('volume_id').execute();
      await db.schema
        .createIndex('snapshots_project_idx')
        .on('snapshots')
        .columns(['project_id', 'deleted'])
        .execute();
      await db.schema
        .createTable('snapshot_metadata')
        .addColumn('snapshot_id', ID, (c) => c.notNull().references('snapshots.id').onDelete('cascade'))
        .addColumn('key', 'varchar(255)', (c) => c.notNull())
        .addColumn('value', 'varchar(255)', (c) => c.notNull())
        .addPrimaryKeyConstraint('snapshot_metadata_pk', ['snapshot_id', 'key'])
        .execute();
      await db.schema.alterTable('volumes').addColumn('snapshot_id', ID).execute();
    },
  },
};
