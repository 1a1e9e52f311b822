export { Glance, type GlanceOptions, type ImageData } from './glance';
export {
  generateQcow2Image,
  parseQcow2Header,
  inspectDiskHead,
  type Qcow2Header,
  type Qcow2ImageOptions,
} from './qcow2';
export { HashingMeter, type DataDigests } from './hashing';
export type { CreateImageInput, UpdateImageInput, ListImagesFilter } from './requests';
export * from './types';
export type {
  MetadefNamespace,
  MetadefNamespaceDetail,
  MetadefObject,
  MetadefTag,
  ResourceTypeAssociation,
  ListNamespacesOptions,
  Metadefs,
} from './metadefs';
export type { PropertyType } from './metadef-requests';
export { TASK_STATUSES, type ListTasksOptions, type Task, type Tasks } from './tasks';
