import type { Kysely, Migration } from 'kysely';

export const glanceMigrations: Record<string, Migration> = {
  '001_images': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('images')
        .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('disk_format', 'varchar(16)', (c) => c.notNull())
        .addColumn('container_format', 'varchar(16)', (c) => c.notNull())
        .addColumn('size', 'bigint')
        .addColumn('virtual_size', 'bigint')
        .addColumn('checksum', 'varchar(32)')
        .addColumn('os_hash_algo', 'varchar(64)')
        .addColumn('os_hash_value', 'varchar(128)')
        .addColumn('visibility', 'varchar(16)', (c) => c.notNull())
        .addColumn('owner', 'varchar(255)')
        .addColumn('min_disk', 'integer', (c) => c.notNull())
        .addColumn('min_ram', 'integer', (c) => c.notNull())
        .addColumn('protected', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addColumn('deleted_at', 'bigint')
        .execute();
      await db.schema.createIndex('images_owner_idx').on('images').column('owner').execute();
      await db.schema.createIndex('images_name_idx').on('images').column('name').execute();
      await db.schema
        .createIndex('images_visibility_status_idx')
        .on('images')
        .columns(['visibility', 'status'])
        .execute();

      await db.schema
        .createTable('image_properties')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_properties_pk', ['image_id', 'name'])
        .execute();

      await db.schema
        .createTable('image_members')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('member', 'varchar(255)', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_members_pk', ['image_id', 'member'])
        .execute();
      await db.schema.createIndex('image_members_member_idx').on('image_members').column('member').execute();
    },
  },
};
