import {
  MysqlAdapter,
  PostgresAdapter,
  sql,
  type CreateTableBuilder,
  type Kysely,
  type Migration,
} from 'kysely';

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
  /**
   * Glance's later columns and tables: `os_hidden`, image tags, and images created without a disk or container
   * format (queued until a PATCH sets them, as Glance allows).
   */
  '002_tags_hidden_nullable_formats': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('images')
        .addColumn('os_hidden', 'integer', (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema
        .createTable('image_tags')
        .addColumn('image_id', 'varchar(36)', (c) => c.notNull().references('images.id').onDelete('cascade'))
        .addColumn('value', 'varchar(255)', (c) => c.notNull())
        .addPrimaryKeyConstraint('image_tags_pk', ['image_id', 'value'])
        .execute();
      await db.schema.createIndex('image_tags_value_idx').on('image_tags').column('value').execute();
      await dropFormatsNotNull(db);
    },
  },
  /**
   * Glance's metadata definitions (glance/db/sqlalchemy/models_metadef.py): namespaces and what they hold
   * (objects, properties, tags, resource type associations). Ids are UUIDs where Glance has integers; a
   * namespace's contents go with it. The resource types DevStack's `glance-manage db_load_metadefs` brings
   * with Glance's own definitions (etc/metadefs) are seeded, protected as that loader makes them.
   */
  '003_metadefs': {
    async up(db: Kysely<unknown>) {
      const stamps = (t: CreateTableBuilder<string>) =>
        t
          .addColumn('created_at', 'bigint', (c) => c.notNull())
          .addColumn('updated_at', 'bigint', (c) => c.notNull());
      const inNamespace = (t: CreateTableBuilder<string>) =>
        t.addColumn('namespace_id', 'varchar(36)', (c) =>
          c.notNull().references('metadef_namespaces.id').onDelete('cascade'),
        );
      await stamps(
        db.schema
          .createTable('metadef_namespaces')
          .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
          .addColumn('namespace', 'varchar(80)', (c) => c.notNull().unique())
          .addColumn('display_name', 'varchar(80)')
          .addColumn('description', 'text')
          .addColumn('visibility', 'varchar(32)', (c) => c.notNull())
          .addColumn('protected', 'integer', (c) => c.notNull())
          .addColumn('owner', 'varchar(255)', (c) => c.notNull()),
      ).execute();
      await db.schema
        .createIndex('metadef_namespaces_owner_idx')
        .on('metadef_namespaces')
        .column('owner')
        .execute();
      await stamps(
        db.schema
          .createTable('metadef_resource_types')
          .addColumn('name', 'varchar(80)', (c) => c.primaryKey())
          .addColumn('protected', 'integer', (c) => c.notNull()),
      ).execute();
      await stamps(
        inNamespace(db.schema.createTable('metadef_namespace_resource_types'))
          .addColumn('resource_type', 'varchar(80)', (c) =>
            c.notNull().references('metadef_resource_types.name'),
          )
          .addColumn('properties_target', 'varchar(80)')
          .addColumn('prefix', 'varchar(80)')
          .addPrimaryKeyConstraint('metadef_ns_rt_pk', ['namespace_id', 'resource_type']),
      ).execute();
      // An object's and a property's JSON schema are kept as JSON text, as Glance's JSONEncodedDict.
      await stamps(
        inNamespace(db.schema.createTable('metadef_objects'))
          .addColumn('name', 'varchar(80)', (c) => c.notNull())
          .addColumn('description', 'text')
          .addColumn('required', 'text')
          .addColumn('json_schema', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('metadef_objects_pk', ['namespace_id', 'name']),
      ).execute();
      await stamps(
        inNamespace(db.schema.createTable('metadef_properties'))
          .addColumn('name', 'varchar(80)', (c) => c.notNull())
          .addColumn('json_schema', 'text', (c) => c.notNull())
          .addPrimaryKeyConstraint('metadef_properties_pk', ['namespace_id', 'name']),
      ).execute();
      await stamps(
        inNamespace(db.schema.createTable('metadef_tags'))
          .addColumn('name', 'varchar(80)', (c) => c.notNull())
          .addPrimaryKeyConstraint('metadef_tags_pk', ['namespace_id', 'name']),
      ).execute();
      const now = Date.now();
      await db
        .insertInto('metadef_resource_types' as never)
        .values(
          SEEDED_RESOURCE_TYPES.map((name) => ({
            name,
            protected: 1,
            created_at: now,
            updated_at: now,
          })) as never,
        )
        .execute();
    },
  },
  /**
   * Glance's tasks (the tasks and task_info tables, one table here): what `POST /v2/tasks` was asked, and how
   * it ended.
   */
  '004_tasks': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('tasks')
        .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('type', 'varchar(30)', (c) => c.notNull())
        .addColumn('status', 'varchar(30)', (c) => c.notNull())
        .addColumn('owner', 'varchar(255)', (c) => c.notNull())
        .addColumn('input', 'text')
        .addColumn('result', 'text')
        .addColumn('message', 'text', (c) => c.notNull())
        .addColumn('image_id', 'varchar(36)')
        .addColumn('request_id', 'varchar(64)')
        .addColumn('user_id', 'varchar(64)')
        .addColumn('expires_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('tasks_owner_idx').on('tasks').column('owner').execute();
    },
  },
};

/** The resource types Glance's shipped metadefs (etc/metadefs/*.json) name. */
export const SEEDED_RESOURCE_TYPES = [
  'OS::Cinder::Volume',
  'OS::Glance::Image',
  'OS::Nova::Aggregate',
  'OS::Nova::Flavor',
  'OS::Nova::Server',
  'OS::Trove::Instance',
];

/** disk_format and container_format become nullable: each dialect has its own way. */
async function dropFormatsNotNull(db: Kysely<unknown>): Promise<void> {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof MysqlAdapter) {
    for (const column of ['disk_format', 'container_format'])
      await db.schema.alterTable('images').modifyColumn(column, 'varchar(16)').execute();
    return;
  }
  if (adapter instanceof PostgresAdapter) {
    for (const column of ['disk_format', 'container_format'])
      await db.schema
        .alterTable('images')
        .alterColumn(column, (c) => c.dropNotNull())
        .execute();
    return;
  }
  // SQLite cannot drop a NOT NULL: rebuild the table (its documented 12 steps). Kysely runs SQLite
  // migrations outside a transaction, so the foreign keys can be switched off around the rebuild (dropping
  // `images` with them on would cascade into its properties and members).
  await sql`PRAGMA foreign_keys = OFF`.execute(db);
  try {
    await sql`BEGIN`.execute(db);
    await sql`CREATE TABLE images_new (
      id varchar(36) PRIMARY KEY, name varchar(255) NOT NULL, status varchar(16) NOT NULL,
      disk_format varchar(16), container_format varchar(16), size bigint, virtual_size bigint,
      checksum varchar(32), os_hash_algo varchar(64), os_hash_value varchar(128),
      visibility varchar(16) NOT NULL, owner varchar(255), min_disk integer NOT NULL,
      min_ram integer NOT NULL, protected integer NOT NULL, created_at bigint NOT NULL,
      updated_at bigint NOT NULL, deleted_at bigint, os_hidden integer NOT NULL DEFAULT 0)`.execute(db);
    await sql`INSERT INTO images_new (id, name, status, disk_format, container_format, size, virtual_size,
      checksum, os_hash_algo, os_hash_value, visibility, owner, min_disk, min_ram, protected, created_at,
      updated_at, deleted_at, os_hidden)
      SELECT id, name, status, disk_format, container_format, size, virtual_size, checksum, os_hash_algo,
      os_hash_value, visibility, owner, min_disk, min_ram, protected, created_at, updated_at, deleted_at,
      os_hidden FROM images`.execute(db);
    await sql`DROP TABLE images`.execute(db);
    await sql`ALTER TABLE images_new RENAME TO images`.execute(db);
    await sql`CREATE INDEX images_owner_idx ON images (owner)`.execute(db);
    await sql`CREATE INDEX images_name_idx ON images (name)`.execute(db);
    await sql`CREATE INDEX images_visibility_status_idx ON images (visibility, status)`.execute(db);
    const broken = await sql`PRAGMA foreign_key_check`.execute(db);
    if (broken.rows.length) throw new Error('glance migration 002: foreign key check failed');
    await sql`COMMIT`.execute(db);
  } catch (err) {
    await sql`ROLLBACK`.execute(db).catch(() => undefined);
    throw err;
  } finally {
    await sql`PRAGMA foreign_keys = ON`.execute(db);
  }
}
