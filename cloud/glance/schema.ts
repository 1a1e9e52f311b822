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
}
