/**
 * Nova: the compute API's database (flavors, instances, faults, actions, quotas) and the compute service
 * records the scheduler reads. Owns the `nova` database and nothing else; other services' state comes in
 * as arguments.
 */
import { systemClock, type Clock } from '../clock';
import { openServiceDb, type DbConfig } from '../db';
import * as actions from './actions';
import * as adminActions from './admin-actions';
import { Conductor } from './conductor';
import {
  ComputeServices,
  DEFAULT_SERVICE_DOWN_TIME_MS,
  type ComputeHost,
  type HostState,
  type HostStateFilter,
  type RegisterComputeHostInput,
} from './compute-services';
import type { NovaContext } from './db-util';
import * as flavors from './flavors';
import * as flavorAccess from './flavor-access';
import * as flavorExtras from './flavor-extras';
import * as instances from './instances';
import * as serverMetadata from './server-metadata';
import * as serverGroups from './server-groups';
import * as serverTags from './server-tags';
import * as keypairs from './keypairs';
import * as locks from './locks';
import * as operations from './operations';
import * as powerSync from './power-sync';
import { novaMigrations } from './migrations';
import * as quota from './quota';
import type { NovaDb } from './schema';
import type { ApiStatus } from './states';
import { VolumeActions } from './volume-actions';
import { Evacuations } from './evacuate';
import type { WriteGenerations } from '../db-writes';

export * from './states';
export { BUILD_EVENT } from './conductor';
export { EVACUATE_ACTION, REBUILD_EVENT, type EvacuationStart } from './evacuate';
export {
  checkVolumeActionState,
  instanceInvalidState,
  VOLUME_ACTIONS,
  type BeginVolumeActionInput,
  type FinishVolumeActionInput,
  type VolumeActionKind,
} from './volume-actions';
export type {
  BeginDeleteInput,
  Conductor,
  FailBuildInput,
  FailInput,
  FaultRecord,
  HostBuildFailedInput,
  InstanceStep,
  SetHostInput,
  SetTaskStateInput,
  StaleTaskInput,
} from './conductor';
export type { Flavor } from './flavors';
export type { FlavorExtras } from './flavor-extras';
export type { FlavorViewer } from './flavor-access';
export type { FlavorListFilter } from './flavors';
export {
  OPERATION_NAMES,
  OPERATION_RULES,
  checkOperationAllowed,
  isSuperseded,
  operationRule,
  type AdvanceOperationInput,
  type BeginOperationInput,
  type FailOperationInput,
  type FailOperationResult,
  type FinishOperationInput,
  type OperationName,
  type OperationRule,
  type RebuildChanges,
} from './operations';
export type { KeyPair, ImportKeyPairInput } from './keypairs';
export {
  DEFAULT_SERVER_GROUP_MEMBERS,
  DEFAULT_SERVER_GROUPS,
  SERVER_GROUP_POLICIES,
  type CreateServerGroupInput,
  type SchedulingGroup,
  type ServerGroup,
  type ServerGroupPolicy,
  type ServerGroupRules,
} from './server-groups';
export { DEFAULT_KEY_PAIRS_PER_USER, fingerprintOf } from './keypairs';
export { DEFAULT_FLAVORS, guestFlavor } from './flavors';
export type { PowerSyncInput, PowerSyncResult } from './power-sync';
export type {
  Instance,
  CreateInstanceRequest,
  InstancePatch,
  InstanceSchedulerHints,
  UpdateOptions,
} from './instances';
export type {
  InstanceAction,
  InstanceActionEvent,
  InstanceFault,
  FaultInput,
  RecordEventInput,
  StartActionInput,
} from './actions';
export {
  bootPlanRequestSchema,
  bootQuota,
  checkExistingBootVolume,
  checkImageFitsFlavor,
  flavorRefError,
  type BootPlanRequest,
  type BootVolumeFacts,
  type ImageSizes,
} from './api-checks';
export type { QuotaAmounts, QuotaClaim, QuotaResource, QuotaUsage } from './quota';
export { DEFAULT_QUOTA_LIMITS, QUOTA_RESOURCES, instancesAllowed } from './quota';
export type {
  ComputeHost,
  HostState,
  HostStateFilter,
  HostStateSource,
  RegisterComputeHostInput,
} from './compute-services';
export { DEFAULT_AVAILABILITY_ZONE, DEFAULT_SERVICE_DOWN_TIME_MS } from './compute-services';
export type { NovaDb } from './schema';

export interface NovaOptions {
  db: DbConfig;
  clock?: Clock;
  /** How long after its last heartbeat a compute service counts as down (Nova: service_down_time, 60 s). */
  serviceDownTimeMs?: number;
}

export class Nova {
  private readonly computes: ComputeServices;
  /** nova-conductor's multi-row writes for a build and a delete, each one transaction. */
  readonly conductor: Conductor;
  /** nova-api's and the conductor's part of attaching and detaching volumes (volume-actions.ts). */
  readonly volumeActions: VolumeActions;
  /** nova-api's and the conductor's part of evacuate (evacuate.ts). */
  readonly evacuations: Evacuations;

  private constructor(
    private readonly ctx: NovaContext,
    serviceDownTimeMs: number,
  ) {
    this.computes = new ComputeServices(ctx, serviceDownTimeMs);
    this.conductor = new Conductor(ctx, serviceDownTimeMs);
    this.volumeActions = new VolumeActions(ctx, this.computes);
    this.evacuations = new Evacuations(ctx, this.computes);
  }

  static async open(options: NovaOptions): Promise<Nova> {
    const store = await openServiceDb<NovaDb>('nova', novaMigrations, options.db);
    return new Nova(
      { store, clock: options.clock ?? systemClock },
      options.serviceDownTimeMs ?? DEFAULT_SERVICE_DOWN_TIME_MS,
    );
  }

  /** The tables this process has written (cloud/db-writes.ts), for readers that keep what they read. */
  get writes(): WriteGenerations {
    return this.ctx.store.writes;
  }

  /** The underlying database, for tests and the leak audit (read-only use). */
  get store(): NovaContext['store'] {
    return this.ctx.store;
  }

  close(): Promise<void> {
    return this.ctx.store.close();
  }

  // Flavors
  ensureDefaultFlavors(): Promise<flavors.Flavor[]> {
    return flavors.ensureDefaultFlavors(this.ctx);
  }
  /** With a viewer, only a flavor it may see (a private one: admin or on its access list). */
  getFlavor(nameOrId: string, viewer?: flavorAccess.FlavorViewer): Promise<flavors.Flavor> {
    return flavors.getFlavor(this.ctx, nameOrId, viewer);
  }
  /** Every enabled flavor, or as Nova's is_public filter keeps them (flavors.ts listFlavors). */
  listFlavors(filter?: flavors.FlavorListFilter): Promise<flavors.Flavor[]> {
    return flavors.listFlavors(this.ctx, filter);
  }
  createFlavor(input: flavors.CreateFlavorInput): Promise<flavors.Flavor> {
    return flavors.createFlavor(this.ctx, input);
  }
  deleteFlavor(id: string): Promise<void> {
    return flavors.deleteFlavor(this.ctx, id);
  }
  /** Extra specs and descriptions (flavor-extras.ts), by flavor id; all flavors when ids is omitted. */
  listFlavorExtras(ids?: string[]): Promise<Map<string, flavorExtras.FlavorExtras>> {
    return flavorExtras.listFlavorExtras(this.ctx, ids);
  }
  setFlavorExtraSpecs(id: string, specs: Record<string, string>): Promise<Record<string, string>> {
    return flavorExtras.setFlavorExtraSpecs(this.ctx, id, specs);
  }
  deleteFlavorExtraSpec(id: string, key: string): Promise<void> {
    return flavorExtras.deleteFlavorExtraSpec(this.ctx, id, key);
  }
  setFlavorDescription(id: string, description: string | null): Promise<void> {
    return flavorExtras.setFlavorDescription(this.ctx, id, description);
  }
  /** os-flavor-access (flavor-access.ts): a private flavor's projects, by id. */
  listFlavorAccess(id: string): Promise<string[]> {
    return flavorAccess.listFlavorAccess(this.ctx, id);
  }
  addFlavorAccess(input: flavorAccess.AddFlavorAccessInput): Promise<string[]> {
    return flavorAccess.addFlavorAccess(this.ctx, input);
  }
  removeFlavorAccess(input: flavorAccess.RemoveFlavorAccessInput): Promise<string[]> {
    return flavorAccess.removeFlavorAccess(this.ctx, input);
  }

  // Key pairs (per user)
  createKeyPair(input: {
    userId: string;
    name: string;
    type?: keypairs.KeyPairType;
  }): Promise<keypairs.KeyPair & { privateKey: string }> {
    return keypairs.createKeyPair(this.ctx, input);
  }
  importKeyPair(input: keypairs.ImportKeyPairInput): Promise<keypairs.KeyPair> {
    return keypairs.importKeyPair(this.ctx, input);
  }
  getKeyPair(userId: string, name: string): Promise<keypairs.KeyPair> {
    return keypairs.getKeyPair(this.ctx, userId, name);
  }
  listKeyPairs(userId: string): Promise<keypairs.KeyPair[]> {
    return keypairs.listKeyPairs(this.ctx, userId);
  }
  deleteKeyPair(userId: string, name: string): Promise<void> {
    return keypairs.deleteKeyPair(this.ctx, userId, name);
  }

  // Server groups (os-server-groups; members come from the boot's group hint)
  createServerGroup(input: serverGroups.CreateServerGroupInput): Promise<serverGroups.ServerGroup> {
    return serverGroups.createServerGroup(this.ctx, input);
  }
  getServerGroup(uuid: string): Promise<serverGroups.ServerGroup> {
    return serverGroups.getServerGroup(this.ctx, uuid);
  }
  listServerGroups(filter: {
    projectId?: string;
    limit?: number;
    offset?: number;
  }): Promise<serverGroups.ServerGroup[]> {
    return serverGroups.listServerGroups(this.ctx, filter);
  }
  deleteServerGroup(uuid: string): Promise<void> {
    return serverGroups.deleteServerGroup(this.ctx, uuid);
  }
  countServerGroups(projectId: string): Promise<number> {
    return serverGroups.countServerGroups(this.ctx, projectId);
  }
  /** Instance uuid → its group's uuid, for those in one. */
  serverGroupsOf(instanceUuids: string[]): Promise<Map<string, string>> {
    return serverGroups.serverGroupsOf(this.ctx, instanceUuids);
  }
  /** The scheduler's ServerGroupSource: the group of the instance being placed and its other members. */
  schedulingGroupOf(instanceUuid: string): Promise<serverGroups.SchedulingGroup | null> {
    return serverGroups.schedulingGroupOf(this.ctx, instanceUuid);
  }
  /** The scheduler's source of the same_host / different_host hints of the instance being placed. */
  schedulingHintsOf(instanceUuid: string): ReturnType<typeof instances.schedulingHintsOf> {
    return instances.schedulingHintsOf(this.ctx, instanceUuid);
  }

  // Quotas
  claimQuota(
    projectId: string,
    consumerUuid: string,
    amounts: quota.QuotaAmounts,
  ): Promise<quota.QuotaClaim> {
    return quota.claimQuota(this.ctx, projectId, consumerUuid, amounts);
  }
  /** A boot's claim, and whether it is the boot's own to undo (see instances.claimBootQuota). */
  claimBootQuota(
    projectId: string,
    instanceUuid: string,
    amounts: quota.QuotaAmounts,
  ): Promise<{ ownClaim: boolean }> {
    return instances.claimBootQuota(this.ctx, projectId, instanceUuid, amounts);
  }
  releaseQuota(consumerUuid: string): Promise<quota.QuotaAmounts> {
    return quota.releaseQuota(this.ctx, consumerUuid);
  }
  getQuotaUsage(projectId: string): Promise<quota.QuotaUsage> {
    return quota.getQuotaUsage(this.ctx, projectId);
  }
  setQuotaLimits(projectId: string, limits: quota.QuotaAmounts): Promise<quota.QuotaUsage> {
    return quota.setQuotaLimits(this.ctx, projectId, limits);
  }
  listQuotaClaims(projectId?: string): Promise<quota.QuotaClaim[]> {
    return quota.listQuotaClaims(this.ctx, projectId);
  }

  // Instances
  /** With `quota`, the boot's quota claim (held by the instance uuid) in the same transaction as the row. */
  createInstance(
    request: instances.CreateInstanceRequest,
    quota?: quota.QuotaAmounts,
  ): Promise<instances.Instance> {
    return instances.createInstance(this.ctx, request, quota);
  }
  getInstance(uuid: string, options?: { includeDeleted?: boolean }): Promise<instances.Instance> {
    return instances.getInstance(this.ctx, uuid, options);
  }
  listInstances(filter: {
    projectId?: string;
    allProjects?: boolean;
    includeDeleted?: boolean;
    host?: string;
  }): Promise<instances.Instance[]> {
    return instances.listInstances(this.ctx, filter);
  }
  /** The controller's half of a host's periodic power-state sync (see power-sync.ts). */
  syncPowerStates(input: powerSync.PowerSyncInput): Promise<powerSync.PowerSyncResult> {
    return powerSync.syncPowerStates(this.ctx, input);
  }
  updateInstance(
    uuid: string,
    patch: instances.InstancePatch,
    options?: instances.UpdateOptions,
  ): Promise<instances.Instance> {
    return instances.updateInstance(this.ctx, uuid, patch, options);
  }
  /** The server metadata API's writes, on the locked row (server-metadata.ts); the metadata after them. */
  changeInstanceMetadata(
    uuid: string,
    change: serverMetadata.MetadataChange,
  ): Promise<Record<string, string>> {
    return serverMetadata.changeInstanceMetadata(this.ctx, uuid, change);
  }
  /** The server tags API's writes, on the locked row (server-tags.ts); the tags after them. */
  changeInstanceTags(uuid: string, change: serverTags.TagChange): Promise<serverTags.TagChangeResult> {
    return serverTags.changeInstanceTags(this.ctx, uuid, change);
  }
  /** os-lock-server's lock / unlock with its instance action (locks.ts). */
  setInstanceLock(input: locks.SetInstanceLockInput): Promise<instances.Instance> {
    return locks.setInstanceLock(this.ctx, input);
  }
  /** os-resetState: vm_state active or error, task_state None, the resetState action (admin-actions.ts). */
  resetInstanceState(input: adminActions.ResetStateInput): Promise<instances.Instance> {
    return adminActions.resetInstanceState(this.ctx, input);
  }
  softDeleteInstance(uuid: string): Promise<instances.Instance> {
    return instances.softDeleteInstance(this.ctx, uuid);
  }
  apiStatus(instance: Pick<instances.Instance, 'vmState' | 'taskState'>): ApiStatus {
    return instances.apiStatus(instance);
  }

  // Audit trail
  addFault(uuid: string, fault: actions.FaultInput): Promise<actions.InstanceFault> {
    return actions.addFault(this.ctx, uuid, fault);
  }
  listFaults(uuid: string): Promise<actions.InstanceFault[]> {
    return actions.listFaults(this.ctx, uuid);
  }
  startAction(input: actions.StartActionInput): Promise<actions.InstanceAction> {
    return actions.startAction(this.ctx, input);
  }
  finishAction(input: {
    instanceUuid: string;
    requestId: string;
    message?: string;
  }): Promise<actions.InstanceAction> {
    return actions.finishAction(this.ctx, input);
  }
  recordEvent(input: actions.RecordEventInput): Promise<actions.InstanceActionEvent> {
    return actions.recordEvent(this.ctx, input);
  }
  listActions(uuid: string): Promise<actions.InstanceAction[]> {
    return actions.listActions(this.ctx, uuid);
  }

  // Day-two operations (stop, start, reboot, ...): nova-api's guarded begin, the host step's event, the end
  beginOperation(input: operations.BeginOperationInput): Promise<instances.Instance> {
    return operations.beginOperation(this.ctx, input);
  }
  startOperationEvent(input: {
    instanceUuid: string;
    requestId: string;
    operation: operations.OperationName;
    host: string;
  }): Promise<instances.Instance> {
    return operations.startOperationEvent(this.ctx, input);
  }
  advanceOperation(input: operations.AdvanceOperationInput): Promise<instances.Instance> {
    return operations.advanceOperation(this.ctx, input);
  }
  finishOperation(input: operations.FinishOperationInput): Promise<instances.Instance> {
    return operations.finishOperation(this.ctx, input);
  }
  failOperation(input: operations.FailOperationInput): Promise<operations.FailOperationResult> {
    return operations.failOperation(this.ctx, input);
  }

  // Compute services
  registerComputeHost(input: RegisterComputeHostInput): Promise<ComputeHost> {
    return this.computes.registerComputeHost(input);
  }
  heartbeat(host: string): Promise<ComputeHost> {
    return this.computes.heartbeat(host);
  }
  setHostDisabled(host: string, disabled: boolean, reason?: string): Promise<ComputeHost> {
    return this.computes.setHostDisabled(host, disabled, reason);
  }
  setHostForcedDown(host: string, forcedDown: boolean): Promise<ComputeHost> {
    return this.computes.setHostForcedDown(host, forcedDown);
  }
  recordBuildFailure(host: string): Promise<ComputeHost> {
    return this.computes.recordBuildFailure(host);
  }
  recordBuildSuccess(host: string): Promise<ComputeHost> {
    return this.computes.recordBuildSuccess(host);
  }
  getComputeHost(host: string): Promise<ComputeHost> {
    return this.computes.getComputeHost(host);
  }
  listComputeHosts(filter?: HostStateFilter): Promise<ComputeHost[]> {
    return this.computes.listComputeHosts(filter);
  }
  /** HostStateSource for the scheduler; the filter (node uuids and/or hosts) narrows the answer. */
  listHostStates(filter?: HostStateFilter): Promise<HostState[]> {
    return this.computes.listHostStates(filter);
  }
}
export {
  HOST_SERVICE_KEY_FILE,
  SERVICE_KEYS_FILE,
  issueComputeServiceKeys,
  loadComputeServiceKeys,
  loadHostServiceKey,
  signServiceMessage,
  verifyServiceMessage,
  type ServiceMessageKind,
  type ServiceProof,
} from './service-credentials';
export { checkInstanceLock, type SetInstanceLockInput } from './locks';
export { RESET_STATE_ACTION, type ResetStateInput } from './admin-actions';
export { MAX_METADATA_ITEMS, type MetadataChange } from './server-metadata';
export { MAX_TAG_COUNT, type TagChange, type TagChangeResult } from './server-tags';
