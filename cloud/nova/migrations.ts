/** Schema of the nova database: portable Kysely migrations (SQLite, MySQL/MariaDB, PostgreSQL). */
import type { Kysely, Migration } from 'kysely';

type Db = Kysely<unknown>;

async function createFlavors(db: Db): Promise<void> {
  await db.schema
    .createTable('flavors')
    .addColumn('flavorid', 'varchar(255)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(255)', (c) => c.notNull().unique())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('root_gb', 'integer', (c) => c.notNull())
    .addColumn('ephemeral_gb', 'integer', (c) => c.notNull())
    .addColumn('swap_mb', 'integer', (c) => c.notNull())
    .addColumn('is_public', 'integer', (c) => c.notNull())
    .addColumn('disabled', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

async function createInstances(db: Db): Promise<void> {
  await db.schema
    .createTable('instances')
    .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('request_id', 'varchar(255)', (c) => c.notNull().unique())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('flavor_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('flavor_name', 'varchar(255)', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('root_gb', 'integer', (c) => c.notNull())
    .addColumn('ephemeral_gb', 'integer', (c) => c.notNull())
    .addColumn('swap_mb', 'integer', (c) => c.notNull())
    .addColumn('image_ref', 'varchar(255)')
    .addColumn('boot_from_volume', 'integer', (c) => c.notNull())
    .addColumn('networks', 'text', (c) => c.notNull())
    .addColumn('availability_zone', 'varchar(255)')
    .addColumn('vm_state', 'varchar(32)', (c) => c.notNull())
    .addColumn('task_state', 'varchar(32)')
    .addColumn('power_state', 'integer', (c) => c.notNull())
    .addColumn('host', 'varchar(255)')
    .addColumn('node', 'varchar(255)')
    .addColumn('launched_at', 'bigint')
    .addColumn('terminated_at', 'bigint')
    .addColumn('deleted', 'integer', (c) => c.notNull())
    .addColumn('deleted_at', 'bigint')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('instances_project_id_deleted_idx')
    .on('instances')
    .columns(['project_id', 'deleted'])
    .execute();
  await db.schema.createIndex('instances_host_idx').on('instances').columns(['host', 'deleted']).execute();
}

async function createFaultsAndActions(db: Db): Promise<void> {
  await db.schema
    .createTable('instance_faults')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('code', 'integer', (c) => c.notNull())
    .addColumn('message', 'varchar(255)', (c) => c.notNull())
    .addColumn('details', 'text')
    .addColumn('host', 'varchar(255)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('instance_faults_instance_seq_uq', ['instance_uuid', 'seq'])
    .addForeignKeyConstraint('instance_faults_instance_fk', ['instance_uuid'], 'instances', ['uuid'])
    .execute();
  await db.schema
    .createTable('instance_actions')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('instance_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('request_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('action', 'varchar(255)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('start_time', 'bigint', (c) => c.notNull())
    .addColumn('finish_time', 'bigint')
    .addColumn('message', 'varchar(255)')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('instance_actions_request_uq', ['instance_uuid', 'request_id'])
    .addUniqueConstraint('instance_actions_instance_seq_uq', ['instance_uuid', 'seq'])
    .addForeignKeyConstraint('instance_actions_instance_fk', ['instance_uuid'], 'instances', ['uuid'])
    .execute();
  await db.schema
    .createTable('instance_actions_events')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('action_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('event', 'varchar(255)', (c) => c.notNull())
    .addColumn('start_time', 'bigint', (c) => c.notNull())
    .addColumn('finish_time', 'bigint')
    .addColumn('result', 'varchar(255)')
    .addColumn('host', 'varchar(255)')
    .addColumn('details', 'text')
    .addUniqueConstraint('instance_actions_events_seq_uq', ['action_id', 'seq'])
    .addForeignKeyConstraint('instance_actions_events_action_fk', ['action_id'], 'instance_actions', ['id'])
    .execute();
}

async function createQuotas(db: Db): Promise<void> {
  await db.schema
    .createTable('quotas')
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('resource', 'varchar(32)', (c) => c.notNull())
    .addColumn('hard_limit', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('quotas_pk', ['project_id', 'resource'])
    .execute();
  await db.schema
    .createTable('quota_usages')
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('resource', 'varchar(32)', (c) => c.notNull())
    .addColumn('in_use', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('quota_usages_pk', ['project_id', 'resource'])
    .execute();
  await db.schema
    .createTable('quota_allocations')
    .addColumn('consumer_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('resource', 'varchar(32)', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('quota_allocations_pk', ['consumer_uuid', 'resource'])
    .addForeignKeyConstraint('quota_allocations_usage_fk', ['project_id', 'resource'], 'quota_usages', [
      'project_id',
      'resource',
    ])
    .execute();
  await db.schema
    .createIndex('quota_allocations_project_idx')
    .on('quota_allocations')
    .columns(['project_id', 'resource'])
    .execute();
}

async function createComputeServices(db: Db): Promise<void> {
  await db.schema
    .createTable('services')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('host', 'varchar(255)', (c) => c.notNull())
    .addColumn('binary', 'varchar(64)', (c) => c.notNull())
    .addColumn('topic', 'varchar(64)', (c) => c.notNull())
    .addColumn('report_count', 'integer', (c) => c.notNull())
    .addColumn('disabled', 'integer', (c) => c.notNull())
    .addColumn('disabled_reason', 'varchar(255)')
    .addColumn('last_seen_up', 'bigint')
    .addColumn('forced_down', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('services_host_binary_uq', ['host', 'binary'])
    .execute();
  await db.schema
    .createTable('compute_nodes')
    .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('service_id', 'varchar(36)', (c) => c.notNull())
    .addColumn('host', 'varchar(255)', (c) => c.notNull())
    .addColumn('hypervisor_hostname', 'varchar(255)', (c) => c.notNull())
    .addColumn('vcpus', 'integer', (c) => c.notNull())
    .addColumn('memory_mb', 'integer', (c) => c.notNull())
    .addColumn('local_gb', 'integer', (c) => c.notNull())
    .addColumn('cpu_arch', 'varchar(32)', (c) => c.notNull())
    .addColumn('cpu_info', 'text', (c) => c.notNull())
    .addColumn('hypervisor_type', 'varchar(64)', (c) => c.notNull())
    .addColumn('availability_zone', 'varchar(255)', (c) => c.notNull())
    .addColumn('failed_builds', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('compute_nodes_host_node_uq', ['host', 'hypervisor_hostname'])
    .addForeignKeyConstraint('compute_nodes_service_fk', ['service_id'], 'services', ['id'])
    .execute();
}

/** Key pairs per user (os-keypairs), and what a boot records on the instance: key_name and metadata. */
async function createKeyPairs(db: Db): Promise<void> {
  await db.schema
    .createTable('key_pairs')
    .addColumn('id', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('fingerprint', 'varchar(255)', (c) => c.notNull())
    .addColumn('public_key', 'text', (c) => c.notNull())
    .addColumn('type', 'varchar(16)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addUniqueConstraint('key_pairs_user_name_uq', ['user_id', 'name'])
    .execute();
  await db.schema.alterTable('instances').addColumn('key_name', 'varchar(255)').execute();
  await db.schema.alterTable('instances').addColumn('metadata', 'text').execute();
}

/** What else a boot records on the instance: user_data, tags and the access IPs. */
async function addUserDataAndTags(db: Db): Promise<void> {
  await db.schema.alterTable('instances').addColumn('user_data', 'text').execute();
  await db.schema.alterTable('instances').addColumn('tags', 'text').execute();
  await db.schema.alterTable('instances').addColumn('access_ip_v4', 'varchar(39)').execute();
  await db.schema.alterTable('instances').addColumn('access_ip_v6', 'varchar(39)').execute();
}

/** os-lock-server: Nova's instances.locked / locked_by, and the reason (Nova's system_metadata locked_reason). */
async function addInstanceLocks(db: Db): Promise<void> {
  await db.schema
    .alterTable('instances')
    .addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable('instances').addColumn('locked_by', 'varchar(5)').execute();
  await db.schema.alterTable('instances').addColumn('locked_reason', 'varchar(255)').execute();
}

/** Flavor extra specs (Nova's flavor_extra_specs) and descriptions (2.55). */
async function addFlavorExtras(db: Db): Promise<void> {
  await db.schema.alterTable('flavors').addColumn('description', 'text').execute();
  await db.schema
    .createTable('flavor_extra_specs')
    .addColumn('flavorid', 'varchar(255)', (c) => c.notNull())
    .addColumn('spec_key', 'varchar(255)', (c) => c.notNull())
    .addColumn('spec_value', 'varchar(255)', (c) => c.notNull())
    .addPrimaryKeyConstraint('flavor_extra_specs_pk', ['flavorid', 'spec_key'])
    .addForeignKeyConstraint('flavor_extra_specs_flavor_fk', ['flavorid'], 'flavors', ['flavorid'], (fk) =>
      fk.onDelete('cascade'),
    )
    .execute();
}

/**
 * Server groups (Nova's instance_groups, instance_group_policy and instance_group_member in the API
 * database): the group with its one policy and its rules (JSON), and which instances are its members (an
 * instance is in one group at most; a member row goes when its instance is deleted).
 */
async function createServerGroups(db: Db): Promise<void> {
  await db.schema
    .createTable('instance_groups')
    .addColumn('uuid', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('name', 'varchar(255)', (c) => c.notNull())
    .addColumn('project_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('user_id', 'varchar(64)', (c) => c.notNull())
    .addColumn('policy', 'varchar(32)', (c) => c.notNull())
    .addColumn('rules', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('instance_groups_project_idx')
    .on('instance_groups')
    .columns(['project_id', 'created_at'])
    .execute();
  await db.schema
    .createTable('instance_group_members')
    .addColumn('instance_uuid', 'varchar(36)', (c) => c.primaryKey())
    .addColumn('group_uuid', 'varchar(36)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addForeignKeyConstraint(
      'instance_group_members_group_fk',
      ['group_uuid'],
      'instance_groups',
      ['uuid'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('instance_group_members_group_idx')
    .on('instance_group_members')
    .column('group_uuid')
    .execute();
}

/**
 * Private flavors' access list (Nova's flavor_projects: one row per flavor and project granted) and the
 * reservation id a create request gives all its servers (Nova's instances.reservation_id; null on rows
 * written before, whose reservation id is derived from their uuid).
 */
async function addFlavorAccessAndReservations(db: Db): Promise<void> {
  await db.schema
    .createTable('flavor_projects')
    .addColumn('flavorid', 'varchar(255)', (c) => c.notNull())
    .addColumn('project_id', 'varchar(255)', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('flavor_projects_pk', ['flavorid', 'project_id'])
    .addForeignKeyConstraint('flavor_projects_flavor_fk', ['flavorid'], 'flavors', ['flavorid'], (fk) =>
      fk.onDelete('cascade'),
    )
    .execute();
  await db.schema.alterTable('instances').addColumn('reservation_id', 'varchar(255)').execute();
}

/**
 * The scheduler hints of a create request other than `group` (Nova's RequestSpec.scheduler_hints:
 * same_host / different_host, JSON) and the instance's auto_disk_config (OS-DCF:diskConfig AUTO = 1).
 */
async function addSchedulerHintsAndDiskConfig(db: Db): Promise<void> {
  await db.schema.alterTable('instances').addColumn('scheduler_hints', 'text').execute();
  await db.schema.alterTable('instances').addColumn('auto_disk_config', 'smallint').execute();
}

export const novaMigrations: Record<string, Migration> = {
  '001_flavors': { up: createFlavors },
  '002_instances': { up: createInstances },
  '003_instance_faults_and_actions': { up: createFaultsAndActions },
  '004_quotas': { up: createQuotas },
  '005_compute_services': { up: createComputeServices },
  '006_key_pairs': { up: createKeyPairs },
  '007_user_data_and_tags': { up: addUserDataAndTags },
  '008_instance_locks': { up: addInstanceLocks },
  '009_flavor_extras': { up: addFlavorExtras },
  '010_server_groups': { up: createServerGroups },
  '011_flavor_access_and_reservations': { up: addFlavorAccessAndReservations },
  '012_scheduler_hints_and_disk_config': { up: addSchedulerHintsAndDiskConfig },
};
