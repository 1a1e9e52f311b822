export { Cinder, type CinderOptions, type CreateVolumeRequest, type CreateAttachmentRequest } from './cinder';
export type { AttachmentResult } from './cinder';
export type * from './types';
export { GIB, volumeFile } from './volume-files';
export { faultsFile } from './faults';
