/**
 * The placement schema, after OpenStack Placement's: providers with a generation, one inventory row per
 * provider and resource class, consumers with a generation, and allocations. Invariants are kept by the
 * database too: keys, foreign keys and CHECK constraints.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export const placementMigrations: Record<string, Migration> = {
  '001_placement': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('resource_providers')
        .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('resource_providers_name_key', ['name'])
        .execute();

      await db.schema
        .createTable('inventories')
        .addColumn('provider_uuid', 'varchar(36)', (c) =>
          c.notNull().references('resource_providers.uuid').onDelete('cascade'),
        )
        .addColumn('resource_class', 'varchar(64)', (c) => c.notNull())
        .addColumn('total', 'integer', (c) => c.notNull())
        .addColumn('reserved', 'integer', (c) => c.notNull())
        .addColumn('min_unit', 'integer', (c) => c.notNull())
        .addColumn('max_unit', 'integer', (c) => c.notNull())
        .addColumn('step_size', 'integer', (c) => c.notNull())
        .addColumn('allocation_ratio', 'double precision', (c) => c.notNull())
        // Allocations stay the record; `used` is their sum kept in the same transaction, so that candidates
        // come from an index range scan on `free` instead of aggregating every allocation of the cloud.
        .addColumn('used', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('free', 'double precision', (c) =>
          c.generatedAlwaysAs(sql`(total - reserved) * allocation_ratio - used`).stored(),
        )
        // One inventory per provider and resource class.
        .addPrimaryKeyConstraint('inventories_pkey', ['provider_uuid', 'resource_class'])
        .addCheckConstraint(
          'inventories_sane',
          sql`total >= 0 and reserved >= 0 and min_unit >= 1 and max_unit >= min_unit and step_size >= 1 and allocation_ratio > 0 and used >= 0`,
        )
        .execute();
      // Allocation candidates walk this index from the most (or least) free memory and stop at the limit;
      // provider_uuid makes the order total, so no sort step follows the scan.
      await db.schema
        .createIndex('inventories_class_free_idx')
        .on('inventories')
        .columns(['resource_class', 'free', 'provider_uuid'])
        .execute();

      await db.schema
        .createTable('consumers')
        .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
        .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
        .addColumn('user_id', 'varchar(255)', (c) => c.notNull())
        .addColumn('generation', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('consumers_project_idx').on('consumers').columns(['project_id']).execute();

      await db.schema
        .createTable('allocations')
        .addColumn('consumer_uuid', 'varchar(36)', (c) => c.notNull().references('consumers.uuid'))
        .addColumn('provider_uuid', 'varchar(36)', (c) => c.notNull().references('resource_providers.uuid'))
        .addColumn('resource_class', 'varchar(64)', (c) => c.notNull())
        .addColumn('used', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        // One allocation per consumer and resource class (so also per consumer, provider and class): a
        // retried or racing claim can never double-count an instance.
        .addPrimaryKeyConstraint('allocations_pkey', ['consumer_uuid', 'resource_class'])
        .addCheckConstraint('allocations_used_positive', sql`used > 0`)
        .execute();
      // Covering index for per-provider usage sums (usages(), audits): no table scan.
      await db.schema
        .createIndex('allocations_provider_class_used_idx')
        .on('allocations')
        .columns(['provider_uuid', 'resource_class', 'used'])
        .execute();
    },
  },
};
