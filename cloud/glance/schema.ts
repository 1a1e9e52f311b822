/** Glance's tables, as Kysely sees them (portable types: see cloud/db.ts). */

export interface ImagesTable {
  id: string;
  name: string;
  status: string;
  disk_format: string | null;
  container_format: string | null;
  size: number | null;
  virtual_size: number | null;
  checksum: string | null;
  os_hash_algo: string | null;
  os_hash_value: string | null;
  visibility: string;
  owner: string | null;
  min_disk: number;
  min_ram: number;
  /** 0/1 */
  protected: number;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
  /** 0/1 */
  os_hidden: number;
}

export interface ImagePropertiesTable {
  image_id: string;
  name: string;
  value: string;
}

export interface ImageMembersTable {
  image_id: string;
  member: string;
  status: string;
  created_at: number;
  updated_at: number;
}

export interface ImageTagsTable {
  image_id: string;
  value: string;
}

export interface GlanceDb {
  images: ImagesTable;
  image_properties: ImagePropertiesTable;
  image_members: ImageMembersTable;
  image_tags: ImageTagsTable;
  metadef_namespaces: MetadefNamespacesTable;
  metadef_resource_types: MetadefResourceTypesTable;
  metadef_namespace_resource_types: MetadefNamespaceResourceTypesTable;
  metadef_objects: MetadefObjectsTable;
  metadef_properties: MetadefPropertiesTable;
  metadef_tags: MetadefTagsTable;
  tasks: TasksTable;
}

/** Glance's metadata definition tables (migration 003_metadefs). */
export interface MetadefNamespacesTable {
  id: string;
  namespace: string;
  display_name: string | null;
  description: string | null;
  visibility: string;
  /** 0/1 */
  protected: number;
  owner: string;
  created_at: number;
  updated_at: number;
}

export interface MetadefResourceTypesTable {
  name: string;
  /** 0/1 */
  protected: number;
  created_at: number;
  updated_at: number;
}

export interface MetadefNamespaceResourceTypesTable {
  namespace_id: string;
  resource_type: string;
  properties_target: string | null;
  prefix: string | null;
  created_at: number;
  updated_at: number;
}

export interface MetadefObjectsTable {
  namespace_id: string;
  name: string;
  description: string | null;
  /** JSON array of property names, or null. */
  required: string | null;
  /** JSON object: property name → property type. */
  json_schema: string;
  created_at: number;
  updated_at: number;
}

export interface MetadefPropertiesTable {
  namespace_id: string;
  name: string;
  /** JSON object: the property type without its name. */
  json_schema: string;
  created_at: number;
  updated_at: number;
}

export interface MetadefTagsTable {
  namespace_id: string;
  name: string;
  created_at: number;
  updated_at: number;
}

/** Glance's tasks (migration 004_tasks). */
export interface TasksTable {
  id: string;
  type: string;
  status: string;
  owner: string;
  /** JSON, or null. */
  input: string | null;
  /** JSON, or null. */
  result: string | null;
  message: string;
  image_id: string | null;
  request_id: string | null;
  user_id: string | null;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
}
