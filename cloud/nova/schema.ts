/**
 * Row types of the nova database, as Kysely sees them. Portable shapes (see cloud/db.ts): booleans are 0/1
 * integers, timestamps epoch milliseconds, JSON in text columns.
 */
export interface FlavorsTable {
  flavorid: string;
  name: string;
  vcpus: number;
  memory_mb: number;
  root_gb: number;
  ephemeral_gb: number;
  swap_mb: number;
  is_public: number;
  disabled: number;
  created_at: number;
  /** 2.55's description (migration 009); null without. */
  description: string | null;
}

/** Nova's flavor_extra_specs (migration 009). */
export interface FlavorExtraSpecsTable {
  flavorid: string;
  spec_key: string;
  spec_value: string;
}

/** Nova's flavor_projects (migration 011): the projects a private flavor is shared with. */
export interface FlavorProjectsTable {
  flavorid: string;
  project_id: string;
  created_at: number;
}

export interface InstancesTable {
  uuid: string;
  request_id: string;
  name: string;
  project_id: string;
  user_id: string;
  // The flavor is copied into the instance, as Nova does, so later flavor edits never change a server.
  flavor_id: string;
  flavor_name: string;
  vcpus: number;
  memory_mb: number;
  root_gb: number;
  ephemeral_gb: number;
  swap_mb: number;
  image_ref: string | null;
  boot_from_volume: number;
  /** JSON array of network ids. */
  networks: string;
  availability_zone: string | null;
  /** The key pair's name at boot (Nova keeps the name, not a reference: the key may be deleted later). */
  key_name: string | null;
  /** JSON object of the server's metadata (string → string); null before migration 006. */
  metadata: string | null;
  /** Nova's user_data (base64 text as given); null without (and before migration 007). */
  user_data: string | null;
  /** JSON array of the server's tags; null without (and before migration 007). */
  tags: string | null;
  /** Nova's access_ip_v4 / access_ip_v6 as the user gave them; null without (and before migration 007). */
  access_ip_v4: string | null;
  access_ip_v6: string | null;
  /** os-lock-server (migration 008): 1 while locked; by 'owner' or 'admin'; the reason given (2.73). */
  locked: number;
  locked_by: string | null;
  locked_reason: string | null;
  /** The create request's reservation id, shared by its servers (migration 011); null before. */
  reservation_id: string | null;
  /** JSON of the create's same_host / different_host hints (migration 012); null without or before. */
  scheduler_hints?: string | null;
  /** Nova's auto_disk_config (OS-DCF:diskConfig AUTO = 1, MANUAL = 0; migration 012); null before. */
  auto_disk_config?: number | null;
  vm_state: string;
  task_state: string | null;
  power_state: number;
  host: string | null;
  node: string | null;
  launched_at: number | null;
  terminated_at: number | null;
  deleted: number;
  deleted_at: number | null;
  created_at: number;
  updated_at: number;
}

export interface InstanceFaultsTable {
  id: string;
  instance_uuid: string;
  /** Order of the fault among its instance's faults (timestamps can tie). */
  seq: number;
  code: number;
  message: string;
  details: string | null;
  host: string | null;
  created_at: number;
}

export interface InstanceActionsTable {
  id: string;
  instance_uuid: string;
  seq: number;
  request_id: string;
  action: string;
  user_id: string;
  project_id: string;
  start_time: number;
  finish_time: number | null;
  message: string | null;
  created_at: number;
  updated_at: number;
}

export interface InstanceActionsEventsTable {
  id: string;
  action_id: string;
  seq: number;
  event: string;
  start_time: number;
  finish_time: number | null;
  result: string | null;
  host: string | null;
  details: string | null;
}

export interface QuotasTable {
  project_id: string;
  resource: string;
  hard_limit: number;
  created_at: number;
  updated_at: number;
}

/** Running totals per project and resource; claims lock these rows, which serialises them per project. */
export interface QuotaUsagesTable {
  project_id: string;
  resource: string;
  in_use: number;
  updated_at: number;
}

/** What each consumer (instance, volume, port uuid) holds; the key that makes claims idempotent. */
export interface QuotaAllocationsTable {
  consumer_uuid: string;
  project_id: string;
  resource: string;
  amount: number;
  created_at: number;
}

export interface ServicesTable {
  id: string;
  host: string;
  binary: string;
  topic: string;
  report_count: number;
  disabled: number;
  disabled_reason: string | null;
  last_seen_up: number | null;
  forced_down: number;
  created_at: number;
  updated_at: number;
}

export interface ComputeNodesTable {
  uuid: string;
  service_id: string;
  host: string;
  hypervisor_hostname: string;
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  cpu_arch: string;
  /** JSON, like Nova's cpu_info ({"arch": ...}). */
  cpu_info: string;
  hypervisor_type: string;
  availability_zone: string;
  failed_builds: number;
  created_at: number;
  updated_at: number;
}

export interface KeyPairsTable {
  id: string;
  name: string;
  user_id: string;
  fingerprint: string;
  public_key: string;
  /** 'ssh' (Nova also has 'x509'). */
  type: string;
  created_at: number;
}

/** Nova's instance_groups (migration 010): one policy per group, rules as JSON ({} or max_server_per_host). */
export interface InstanceGroupsTable {
  uuid: string;
  name: string;
  project_id: string;
  user_id: string;
  policy: string;
  rules: string;
  created_at: number;
}

/** Nova's instance_group_member (migration 010): an instance is a member of one group at most. */
export interface InstanceGroupMembersTable {
  instance_uuid: string;
  group_uuid: string;
  created_at: number;
}

export interface NovaDb {
  instance_groups: InstanceGroupsTable;
  instance_group_members: InstanceGroupMembersTable;
  key_pairs: KeyPairsTable;
  flavors: FlavorsTable;
  flavor_extra_specs: FlavorExtraSpecsTable;
  flavor_projects: FlavorProjectsTable;
  instances: InstancesTable;
  instance_faults: InstanceFaultsTable;
  instance_actions: InstanceActionsTable;
  instance_actions_events: InstanceActionsEventsTable;
  quotas: QuotasTable;
  quota_usages: QuotaUsagesTable;
  quota_allocations: QuotaAllocationsTable;
  services: ServicesTable;
  compute_nodes: ComputeNodesTable;
}
