/** Schema of the keystone database: the identity, assignment and revocation tables Keystone keeps. */
import { MysqlAdapter, PostgresAdapter, sql, type Kysely, type Migration } from 'kysely';

export const keystoneMigrations: Record<string, Migration> = {
  '001_identity': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('domains')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
        .addColumn('description', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('projects')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().references('domains.id'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('projects_domain_name_unique', ['domain_id', 'name'])
        .execute();

      await db.schema
        .createTable('users')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().references('domains.id'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('email', 'varchar(255)')
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('password_hash', 'varchar(255)', (c) => c.notNull())
        .addColumn('password_changed_at', 'bigint', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('users_domain_name_unique', ['domain_id', 'name'])
        .execute();

      await db.schema
        .createTable('roles')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('implied_roles')
        .addColumn('prior_role_id', 'varchar(64)', (c) =>
          c.notNull().references('roles.id').onDelete('cascade'),
        )
        .addColumn('implied_role_id', 'varchar(64)', (c) =>
          c.notNull().references('roles.id').onDelete('cascade'),
        )
        .addPrimaryKeyConstraint('implied_roles_pk', ['prior_role_id', 'implied_role_id'])
        .execute();

      await db.schema
        .createTable('role_assignments')
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('project_id', 'varchar(64)', (c) =>
          c.notNull().references('projects.id').onDelete('cascade'),
        )
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('role_assignments_pk', ['user_id', 'project_id', 'role_id'])
        .execute();
      await db.schema
        .createIndex('role_assignments_project_idx')
        .on('role_assignments')
        .columns(['project_id'])
        .execute();

      await db.schema
        .createTable('revocation_events')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('user_id', 'varchar(64)')
        .addColumn('project_id', 'varchar(64)')
        .addColumn('audit_id', 'varchar(64)')
        .addColumn('issued_before', 'bigint', (c) => c.notNull())
        .addColumn('revoked_at', 'bigint', (c) => c.notNull())
        .execute();
      for (const column of ['user_id', 'project_id', 'audit_id', 'revoked_at'] as const) {
        await db.schema
          .createIndex(`revocation_events_${column}_idx`)
          .on('revocation_events')
          .column(column)
          .execute();
      }
    },
  },
  // Keystone's assignment table also holds UserDomain rows: a role on a domain, for domain-scoped tokens.
  '002_domain_role_assignments': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('domain_role_assignments')
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().references('domains.id'))
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('domain_role_assignments_pk', ['user_id', 'domain_id', 'role_id'])
        .execute();
    },
  },
  // Keystone keeps a resource's attributes beyond its columns (a user's description, any extra key a client
  // sends) in an `extra` JSON column and answers them back; and it grants roles on the system too.
  '003_extra_attributes_system_grants': {
    async up(db: Kysely<unknown>) {
      for (const table of ['projects', 'users'] as const)
        await db.schema
          .alterTable(table)
          .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
          .execute();
      // Keystone's system role assignments (a role on the whole deployment, `scope.system.all`).
      await db.schema
        .createTable('system_role_assignments')
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('system_role_assignments_pk', ['user_id', 'role_id'])
        .execute();
    },
  },
  // Keystone's project hierarchy (parent_id; no foreign key so that a domain's projects go in one delete)
  // and its project_tag table.
  '004_project_hierarchy_tags': {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable('projects').addColumn('parent_id', 'varchar(64)').execute();
      await db.schema.createIndex('projects_parent_idx').on('projects').column('parent_id').execute();
      await db.schema
        .createTable('project_tag')
        .addColumn('project_id', 'varchar(64)', (c) =>
          c.notNull().references('projects.id').onDelete('cascade'),
        )
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addPrimaryKeyConstraint('project_tag_pk', ['project_id', 'name'])
        .execute();
    },
  },
  // Keystone's groups: the group table, user_group_membership, and the GroupProject / GroupDomain rows of
  // its assignment table (here one table per target, as for users).
  '005_groups': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('groups')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().references('domains.id'))
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addUniqueConstraint('groups_domain_name_unique', ['domain_id', 'name'])
        .execute();
      await db.schema
        .createTable('user_group_membership')
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('group_id', 'varchar(64)', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('user_group_membership_pk', ['user_id', 'group_id'])
        .execute();
      await db.schema
        .createIndex('user_group_membership_group_idx')
        .on('user_group_membership')
        .column('group_id')
        .execute();
      await db.schema
        .createTable('group_role_assignments')
        .addColumn('group_id', 'varchar(64)', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('project_id', 'varchar(64)', (c) =>
          c.notNull().references('projects.id').onDelete('cascade'),
        )
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_role_assignments_pk', ['group_id', 'project_id', 'role_id'])
        .execute();
      await db.schema
        .createIndex('group_role_assignments_project_idx')
        .on('group_role_assignments')
        .column('project_id')
        .execute();
      await db.schema
        .createTable('group_domain_role_assignments')
        .addColumn('group_id', 'varchar(64)', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().references('domains.id'))
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_domain_role_assignments_pk', ['group_id', 'domain_id', 'role_id'])
        .execute();
      await db.schema
        .createTable('group_system_role_assignments')
        .addColumn('group_id', 'varchar(64)', (c) => c.notNull().references('groups.id').onDelete('cascade'))
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('group_system_role_assignments_pk', ['group_id', 'role_id'])
        .execute();
    },
  },
  // Keystone's catalog (keystone/catalog/backends/sql.py): region, service and endpoint, each with its
  // `extra` (a service's name and description live there, as in Keystone); OS-EP-FILTER's endpoint groups
  // and their projects.
  '006_catalog': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('regions')
        .addColumn('id', 'varchar(255)', (c) => c.primaryKey())
        .addColumn('description', 'varchar(255)', (c) => c.notNull())
        .addColumn('parent_region_id', 'varchar(255)')
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('services')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('type', 'varchar(255)', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('endpoints')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('interface', 'varchar(8)', (c) => c.notNull())
        // ondelete RESTRICT, as Keystone's: a region with endpoints is not deleted.
        .addColumn('region_id', 'varchar(255)', (c) => c.references('regions.id'))
        .addColumn('service_id', 'varchar(64)', (c) => c.notNull().references('services.id'))
        .addColumn('url', 'text', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('endpoints_service_idx').on('endpoints').column('service_id').execute();
      await db.schema
        .createTable('endpoint_groups')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('filters', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('project_endpoint_groups')
        .addColumn('endpoint_group_id', 'varchar(64)', (c) =>
          c.notNull().references('endpoint_groups.id').onDelete('cascade'),
        )
        .addColumn('project_id', 'varchar(64)', (c) =>
          c.notNull().references('projects.id').onDelete('cascade'),
        )
        .addPrimaryKeyConstraint('project_endpoint_groups_pk', ['endpoint_group_id', 'project_id'])
        .execute();
    },
  },
  // Keystone's credential table (the blob encrypted, as its fernet credential provider keeps it:
  // encrypted_blob, and key_hash naming the key) and its application credentials (the secret hashed, never
  // stored) with the roles each delegates; its policy blobs; and OS-INHERIT's inherited grants.
  '007_credentials': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('credentials')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('project_id', 'varchar(64)')
        .addColumn('type', 'varchar(255)', (c) => c.notNull())
        .addColumn('encrypted_blob', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('credentials_user_idx').on('credentials').column('user_id').execute();
      await db.schema
        .createTable('application_credentials')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('user_id', 'varchar(64)', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('project_id', 'varchar(64)', (c) =>
          c.notNull().references('projects.id').onDelete('cascade'),
        )
        .addColumn('secret_hash', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'text')
        // Epoch ms, and the microseconds past it (Keystone keeps the time a client gave to the microsecond);
        // null: never.
        .addColumn('expires_at', 'bigint')
        .addColumn('expires_at_us', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('unrestricted', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('application_credentials_user_name_unique', ['user_id', 'name'])
        .execute();
      await db.schema
        .createTable('application_credential_roles')
        .addColumn('application_credential_id', 'varchar(64)', (c) =>
          c.notNull().references('application_credentials.id').onDelete('cascade'),
        )
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('application_credential_roles_pk', ['application_credential_id', 'role_id'])
        .execute();
      // Keystone's policy table (/v3/policies): opaque blobs of a type, stored and answered back.
      await db.schema
        .createTable('policies')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('type', 'varchar(255)', (c) => c.notNull())
        .addColumn('blob', 'text', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      // OS-INHERIT: a role a user or a group holds on every project below a domain or a project (the
      // `inherited` rows of Keystone's assignment table), one table for the four kinds.
      await db.schema
        .createTable('inherited_role_assignments')
        .addColumn('actor_type', 'varchar(8)', (c) => c.notNull())
        .addColumn('actor_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('target_type', 'varchar(8)', (c) => c.notNull())
        .addColumn('target_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('role_id', 'varchar(64)', (c) => c.notNull().references('roles.id').onDelete('cascade'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('inherited_role_assignments_pk', [
          'actor_type',
          'actor_id',
          'target_type',
          'target_id',
          'role_id',
        ])
        .execute();
      await db.schema
        .createIndex('inherited_role_assignments_target_idx')
        .on('inherited_role_assignments')
        .columns(['target_type', 'target_id'])
        .execute();
    },
  },
  // Keystone's domain-specific roles (role.domain_id, '<<null>>' for a global role, names unique per domain:
  // its migration 'domain-specific roles', unique (name, domain_id)).
  '008_domain_roles': {
    async up(db: Kysely<unknown>) {
      await rolesUniquePerDomain(db);
    },
  },
  // OS-OAUTH1 consumers (Keystone's consumer table; the secret sealed with the credential key, never plain)
  // and the domain configuration API's options (its whitelisted_config and sensitive_config tables in one,
  // a sensitive value sealed too; values JSON).
  '009_oauth1_domain_config': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('oauth1_consumers')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('description', 'text')
        .addColumn('secret_sealed', 'text', (c) => c.notNull())
        .addColumn('key_hash', 'varchar(64)', (c) => c.notNull())
        .addColumn('extra', 'text', (c) => c.notNull().defaultTo('{}'))
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('domain_config')
        .addColumn('domain_id', 'varchar(64)', (c) =>
          c.notNull().references('domains.id').onDelete('cascade'),
        )
        .addColumn('group_name', 'varchar(255)', (c) => c.notNull())
        .addColumn('option_name', 'varchar(255)', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('sensitive', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('domain_config_pk', ['domain_id', 'group_name', 'option_name'])
        .execute();
    },
  },
};

/** Keystone's NULL_DOMAIN_ID: the domain_id of a global role, so that (domain_id, name) can be unique. */
export const NULL_DOMAIN_ID = '<<null>>';

/**
 * roles gains domain_id and its names become unique per domain: each dialect drops the unique name its own
 * way (SQLite cannot drop a constraint: the table is rebuilt, foreign keys off, as glance's 002 does).
 */
async function rolesUniquePerDomain(db: Kysely<unknown>): Promise<void> {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof MysqlAdapter || adapter instanceof PostgresAdapter) {
    await db.schema
      .alterTable('roles')
      .addColumn('domain_id', 'varchar(64)', (c) => c.notNull().defaultTo(NULL_DOMAIN_ID))
      .execute();
    if (adapter instanceof MysqlAdapter) await sql`ALTER TABLE roles DROP INDEX name`.execute(db);
    else await sql`ALTER TABLE roles DROP CONSTRAINT roles_name_key`.execute(db);
    await db.schema
      .alterTable('roles')
      .addUniqueConstraint('roles_domain_name_unique', ['domain_id', 'name'])
      .execute();
    return;
  }
  await sql`PRAGMA foreign_keys = OFF`.execute(db);
  try {
    await sql`BEGIN`.execute(db);
    await sql`CREATE TABLE roles_new (
      id varchar(64) PRIMARY KEY, name varchar(255) NOT NULL, created_at bigint NOT NULL,
      domain_id varchar(64) NOT NULL DEFAULT '<<null>>',
      CONSTRAINT roles_domain_name_unique UNIQUE (domain_id, name))`.execute(db);
    await sql`INSERT INTO roles_new (id, name, created_at) SELECT id, name, created_at FROM roles`.execute(
      db,
    );
    await sql`DROP TABLE roles`.execute(db);
    await sql`ALTER TABLE roles_new RENAME TO roles`.execute(db);
    const broken = await sql`PRAGMA foreign_key_check`.execute(db);
    if (broken.rows.length) throw new Error('keystone migration 008: foreign key check failed');
    await sql`COMMIT`.execute(db);
  } catch (err) {
    await sql`ROLLBACK`.execute(db).catch(() => undefined);
    throw err;
  } finally {
    await sql`PRAGMA foreign_keys = ON`.execute(db);
  }
}
