/**
 * The neutron database, after Neutron's own tables. The invariants live here too: one allocation per
 * (subnet, address), one MAC per network, one port per request key, one default security group per project.
 */
import type { Kysely, Migration } from 'kysely';

const ID = 'varchar(36)';
const PROJECT = 'varchar(64)';

export const neutronMigrations: Record<string, Migration> = {
  '001_networks_subnets': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('networks')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('shared', 'integer', (c) => c.notNull())
        .addColumn('router_external', 'integer', (c) => c.notNull())
        .addColumn('admin_state_up', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('mtu', 'integer', (c) => c.notNull())
        .addColumn('request_key', 'varchar(255)', (c) => c.unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('networks_project_idx').on('networks').column('project_id').execute();
      await db.schema.createIndex('networks_name_idx').on('networks').column('name').execute();

      await db.schema
        .createTable('subnets')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('network_id', ID, (c) => c.notNull().references('networks.id').onDelete('cascade'))
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('cidr', 'varchar(64)', (c) => c.notNull())
        .addColumn('ip_version', 'integer', (c) => c.notNull())
        .addColumn('gateway_ip', 'varchar(64)')
        .addColumn('enable_dhcp', 'integer', (c) => c.notNull())
        .addColumn('request_key', 'varchar(255)', (c) => c.unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('subnets_network_idx').on('subnets').column('network_id').execute();

      await db.schema
        .createTable('ip_allocation_pools')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('subnet_id', ID, (c) => c.notNull().references('subnets.id').onDelete('cascade'))
        .addColumn('first_ip', 'varchar(64)', (c) => c.notNull())
        .addColumn('last_ip', 'varchar(64)', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('ip_allocation_pools_subnet_idx')
        .on('ip_allocation_pools')
        .column('subnet_id')
        .execute();
    },
  },
  '002_ports': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('ports')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('network_id', ID, (c) => c.notNull().references('networks.id'))
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('mac_address', 'varchar(32)', (c) => c.notNull())
        .addColumn('admin_state_up', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('device_id', 'varchar(255)', (c) => c.notNull())
        .addColumn('device_owner', 'varchar(255)', (c) => c.notNull())
        .addColumn('binding_host_id', 'varchar(255)')
        .addColumn('binding_vif_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('binding_vif_details', 'text', (c) => c.notNull())
        .addColumn('binding_vnic_type', 'varchar(64)', (c) => c.notNull())
        .addColumn('request_key', 'varchar(255)', (c) => c.unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('ports_network_mac_unique', ['network_id', 'mac_address'])
        .execute();
      await db.schema.createIndex('ports_device_idx').on('ports').column('device_id').execute();

      // Neutron's key: an address is allocated at most once per subnet.
      await db.schema
        .createTable('ipallocations')
        .addColumn('ip_address', 'varchar(64)', (c) => c.notNull())
        .addColumn('subnet_id', ID, (c) => c.notNull().references('subnets.id').onDelete('cascade'))
        .addColumn('network_id', ID, (c) => c.notNull().references('networks.id'))
        .addColumn('port_id', ID, (c) => c.notNull().references('ports.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('ipallocations_pk', ['subnet_id', 'ip_address'])
        .execute();
      await db.schema.createIndex('ipallocations_port_idx').on('ipallocations').column('port_id').execute();
    },
  },
  '003_security_groups': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('security_groups')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('description', 'varchar(255)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex('security_groups_project_idx')
        .on('security_groups')
        .column('project_id')
        .execute();

      // As in Neutron: the primary key makes "one default group per project" race-free.
      await db.schema
        .createTable('default_security_groups')
        .addColumn('project_id', PROJECT, (c) => c.primaryKey())
        .addColumn('security_group_id', ID, (c) =>
          c.notNull().unique().references('security_groups.id').onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('security_group_rules')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('security_group_id', ID, (c) =>
          c.notNull().references('security_groups.id').onDelete('cascade'),
        )
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('direction', 'varchar(16)', (c) => c.notNull())
        .addColumn('ethertype', 'varchar(8)', (c) => c.notNull())
        .addColumn('protocol', 'varchar(40)')
        .addColumn('port_range_min', 'integer')
        .addColumn('port_range_max', 'integer')
        .addColumn('remote_ip_prefix', 'varchar(64)')
        .addColumn('remote_group_id', ID, (c) => c.references('security_groups.id').onDelete('cascade'))
        .execute();
      await db.schema
        .createIndex('security_group_rules_group_idx')
        .on('security_group_rules')
        .column('security_group_id')
        .execute();

      await db.schema
        .createTable('securitygroupportbindings')
        .addColumn('port_id', ID, (c) => c.notNull().references('ports.id').onDelete('cascade'))
        .addColumn('security_group_id', ID, (c) => c.notNull().references('security_groups.id'))
        .addPrimaryKeyConstraint('securitygroupportbindings_pk', ['port_id', 'security_group_id'])
        .execute();
    },
  },
  // Neutron's standard-attr description, and a subnet's DNS servers and host routes in Neutron's own tables.
  '004_descriptions_dns_routes': {
    async up(db: Kysely<unknown>) {
      for (const table of ['networks', 'subnets', 'ports'])
        await db.schema
          .alterTable(table)
          .addColumn('description', 'varchar(255)', (c) => c.notNull().defaultTo(''))
          .execute();
      await db.schema
        .createTable('dnsnameservers')
        .addColumn('address', 'varchar(128)', (c) => c.notNull())
        .addColumn('subnet_id', ID, (c) => c.notNull().references('subnets.id').onDelete('cascade'))
        .addColumn('order', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('dnsnameservers_pk', ['address', 'subnet_id'])
        .execute();
      await db.schema
        .createTable('subnetroutes')
        .addColumn('destination', 'varchar(64)', (c) => c.notNull())
        .addColumn('nexthop', 'varchar(64)', (c) => c.notNull())
        .addColumn('subnet_id', ID, (c) => c.notNull().references('subnets.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('subnetroutes_pk', ['destination', 'nexthop', 'subnet_id'])
        .execute();
    },
  },
  // A security group rule's standard-attr description (rules are created through the API since).
  '005_security_group_rule_description': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .alterTable('security_group_rules')
        .addColumn('description', 'varchar(255)', (c) => c.notNull().defaultTo(''))
        .execute();
    },
  },
  /**
   * A port's allowed address pairs (Neutron's allowedaddresspairs table) and the standard-attr tags of
   * networks, subnets, ports and security groups (Neutron keeps one `tags` table keyed by the standard
   * attribute id; here one table per resource, so each tag goes with its resource).
   */
  '006_address_pairs_tags': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('allowedaddresspairs')
        .addColumn('port_id', ID, (c) => c.notNull().references('ports.id').onDelete('cascade'))
        .addColumn('mac_address', 'varchar(32)', (c) => c.notNull())
        .addColumn('ip_address', 'varchar(64)', (c) => c.notNull())
        .addPrimaryKeyConstraint('allowedaddresspairs_pk', ['port_id', 'mac_address', 'ip_address'])
        .execute();
      for (const [table, parent] of Object.entries(TAG_TABLES_006))
        await db.schema
          .createTable(table)
          .addColumn('resource_id', ID, (c) => c.notNull().references(`${parent}.id`).onDelete('cascade'))
          .addColumn('tag', 'varchar(255)', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_pk`, ['resource_id', 'tag'])
          .execute();
    },
  },
  /**
   * Neutron's L3 tables (neutron/db/models/l3.py): routers with their gateway port and SNAT flag, the
   * router's ports by type (routerports), its extra routes (routerroutes), floating IPs, and the tags of
   * routers and floating IPs. Recorded only: no L3 agent builds namespaces or NAT from them.
   */
  '007_routers_floating_ips': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('routers')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('name', 'varchar(255)', (c) => c.notNull())
        .addColumn('description', 'varchar(255)', (c) => c.notNull())
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('admin_state_up', 'integer', (c) => c.notNull())
        .addColumn('gw_port_id', ID, (c) => c.references('ports.id'))
        .addColumn('enable_snat', 'integer', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('routers_project_idx').on('routers').column('project_id').execute();
      // As in Neutron: a port belongs to at most one router (the primary key is the port).
      await db.schema
        .createTable('routerports')
        .addColumn('port_id', ID, (c) => c.primaryKey().references('ports.id').onDelete('cascade'))
        .addColumn('router_id', ID, (c) => c.notNull().references('routers.id').onDelete('cascade'))
        .addColumn('port_type', 'varchar(255)', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('routerports_router_idx').on('routerports').column('router_id').execute();
      await db.schema
        .createTable('routerroutes')
        .addColumn('destination', 'varchar(64)', (c) => c.notNull())
        .addColumn('nexthop', 'varchar(64)', (c) => c.notNull())
        .addColumn('router_id', ID, (c) => c.notNull().references('routers.id').onDelete('cascade'))
        .addPrimaryKeyConstraint('routerroutes_pk', ['destination', 'nexthop', 'router_id'])
        .execute();
      // Neutron's unique (floating_network_id, fixed_port_id, fixed_ip_address): one floating IP per fixed IP.
      await db.schema
        .createTable('floatingips')
        .addColumn('id', ID, (c) => c.primaryKey())
        .addColumn('description', 'varchar(255)', (c) => c.notNull())
        .addColumn('project_id', PROJECT, (c) => c.notNull())
        .addColumn('floating_ip_address', 'varchar(64)', (c) => c.notNull())
        .addColumn('floating_network_id', ID, (c) => c.notNull().references('networks.id'))
        .addColumn('floating_port_id', ID, (c) => c.notNull().references('ports.id'))
        .addColumn('fixed_port_id', ID, (c) => c.references('ports.id'))
        .addColumn('fixed_ip_address', 'varchar(64)')
        .addColumn('router_id', ID, (c) => c.references('routers.id'))
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .addUniqueConstraint('floatingips_fixed_unique', [
          'floating_network_id',
          'fixed_port_id',
          'fixed_ip_address',
        ])
        .execute();
      await db.schema.createIndex('floatingips_project_idx').on('floatingips').column('project_id').execute();
      for (const [table, parent] of [
        ['router_tags', 'routers'],
        ['floatingip_tags', 'floatingips'],
      ] as const)
        await db.schema
          .createTable(table)
          .addColumn('resource_id', ID, (c) => c.notNull().references(`${parent}.id`).onDelete('cascade'))
          .addColumn('tag', 'varchar(255)', (c) => c.notNull())
          .addPrimaryKeyConstraint(`${table}_pk`, ['resource_id', 'tag'])
          .execute();
    },
  },
};

/** The tag tables migration 006 made (fixed: later resources add theirs in their own migration). */
const TAG_TABLES_006 = {
  network_tags: 'networks',
  subnet_tags: 'subnets',
  port_tags: 'ports',
  security_group_tags: 'security_groups',
} as const;

/** The tag table of each taggable resource's table. */
export const TAG_TABLES = {
  ...TAG_TABLES_006,
  router_tags: 'routers',
  floatingip_tags: 'floatingips',
} as const;
