export * from './keystone';
export * from './context';
export * from './policy';
export { DEFAULT_IMPLIED_ROLES, DEFAULT_ROLES, expandImpliedRoles } from './roles';
export { DEFAULT_SCRYPT_PARAMS, type ScryptParams } from './passwords';
export { keystoneMigrations } from './migrations';
export { SIGNING_KEY_FILE } from './signing-key';
