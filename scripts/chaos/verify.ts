/**
 * The verdict, read from the cloud's databases and host directories once every workflow has ended and the
 * workers have stopped:
 *   - each request has exactly one outcome: ACTIVE, ERROR with a fault, deleted as asked, or refused
 *     (no server) for the requests that must be; the workflow's answer agrees with Nova (a reset boot's:
 *     its last run's); no request lost, none booted twice (instances per request id, domains per instance);
 *     a boot terminated mid-flight is ERROR with the reconciler's fault, holding nothing (or ACTIVE with
 *     everything, when its server got there before the terminate);
 *   - every ACTIVE server has exactly its port (ACTIVE, bound to its host, one fixed IP), its boot volume
 *     (in-use, attached on its host) or none, its allocation (its flavor, on its host's provider), its quota,
 *     and on its host a running domain, its disk (holding exactly the image's bytes), its VIF and volume
 *     connection; deleted servers hold nothing;
 *   - nothing is over-committed (placement usage = allocations, used <= capacity on every provider);
 *   - the leak audit over every database and every host still alive is empty.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { auditLeaks, type LeakFinding } from '../../cloud/audit';
import type { ComputeHost } from '../../cloud/compute';
import { runCommand } from '../../cloud/compute/host-commands';
import { isCloudError } from '../../cloud/errors';
import type { Cloud } from '../../cloud/index';
import type { Instance } from '../../cloud/nova';
import { RESOURCE_CLASSES } from '../../cloud/placement/resources';
import { resourcesFromFlavor } from '../../cloud/scheduler';
import type { ServerExpectation } from './day-two';
import type { BootHistory } from './histories';
import { MUST_FAIL, type RequestKind } from './plan';
import type { ChaosFixtures } from './setup';
import type { TrackedRequest } from './submit';

/** LOST: never ended, for no reason the run knows; UNFINISHED: still running when the time bound ran out. */
export type Outcome = 'ACTIVE' | 'DELETED' | 'ERROR' | 'REFUSED' | 'LOST' | 'UNFINISHED';

export interface RequestVerdict {
  requestId: string;
  kind: RequestKind;
  outcome: Outcome;
  /** The failure type for ERROR and REFUSED. */
  failureType?: string;
  host?: string;
  attempts: number;
  triedHosts: string[];
  /** What chaos did to its workflow through Temporal. */
  workflow?: 'reset' | 'terminated';
}

export interface Verification {
  verdicts: RequestVerdict[];
  violations: string[];
  leaks: LeakFinding[];
  /** What the lost host's directory still holds (its own clean-up, were it ever to come back). */
  lostHostLeftovers: LeakFinding[];
  /** Boots whose work timed out on the lost host and that then went on elsewhere. */
  movedOffLostHost: number;
}

/** Refusals before any server exists: the failure types each must-fail kind may end with. */
const REFUSED_AS: Partial<Record<RequestKind, string[]>> = {
  quota: ['QuotaExceeded'],
  'missing-image': ['NotFound', 'BadRequest'],
};

/** The backing file a qcow2 overlay names (qemu-img info; -U: the running guest holds its lock). */
async function backingFile(overlay: string): Promise<string> {
  const { stdout } = await runCommand('qemu-img', ['info', '-U', '--output=json', overlay]);
  const info = JSON.parse(stdout) as { 'full-backing-filename'?: string; 'backing-filename'?: string };
  const backing = info['full-backing-filename'] ?? info['backing-filename'];
  if (!backing) throw new Error(`${overlay} has no backing file`);
  return backing;
}

async function md5Prefix(file: string, bytes: number): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const hash = createHash('md5');
    const buf = Buffer.alloc(1024 * 1024);
    let done = 0;
    while (done < bytes) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, bytes - done), done);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
      done += bytesRead;
    }
    return hash.digest('hex');
  } finally {
    await handle.close();
  }
}

interface Context {
  cloud: Cloud;
  hosts: Map<string, ComputeHost>;
  fixtures: ChaosFixtures;
  image: { size: number; checksum: string };
  violations: string[];
  /** Servers day two touched: the state their last actions asked for (day-two.ts). */
  dayTwo: Map<string, ServerExpectation>;
}

function fail(ctx: Context, requestId: string, what: string): void {
  ctx.violations.push(`${requestId}: ${what}`);
}

/** An ACTIVE server and exactly what it should hold, in every service and on its host. */
async function checkActive(ctx: Context, t: TrackedRequest, instance: Instance): Promise<void> {
  const { cloud } = ctx;
  const id = t.planned.requestId;
  const uuid = instance.uuid;
  const host = instance.host;
  const dayTwo = ctx.dayTwo.get(uuid);
  const power = dayTwo?.powerState ?? 1;
  if (instance.taskState !== null || instance.powerState !== power || !host || !instance.node) {
    fail(ctx, id, `ACTIVE but task ${instance.taskState}, power ${instance.powerState}, host ${host}`);
    return;
  }
  const boot = t.boot?.ok ? t.boot.result : undefined;
  if (boot && boot.host !== host && !dayTwo?.evacuatedFrom)
    fail(ctx, id, `workflow says host ${boot.host}, Nova says ${host}`);

  const ports = await cloud.neutron.listPorts({ deviceId: uuid });
  if (ports.length !== 1) fail(ctx, id, `has ${ports.length} ports, expected 1`);
  for (const port of ports) {
    if (port.status !== 'ACTIVE' || port.bindingHostId !== host)
      fail(
        ctx,
        id,
        `port ${port.id} is ${port.status} bound to ${port.bindingHostId}, expected ACTIVE on ${host}`,
      );
    if (port.networkId !== ctx.fixtures.privateNetworkId) fail(ctx, id, `port ${port.id} on another network`);
    if (port.fixedIps.length !== 1) fail(ctx, id, `port ${port.id} has ${port.fixedIps.length} fixed IPs`);
  }
  const ips = await cloud.neutron.listIpAllocations(ctx.fixtures.privateNetworkId);
  for (const ip of ports.flatMap((p) => p.fixedIps)) {
    const owners = ips.filter((a) => a.ipAddress === ip.ipAddress && a.subnetId === ip.subnetId);
    if (owners.length !== 1 || owners[0]?.portId !== ports[0]?.id)
      fail(ctx, id, `IP ${ip.ipAddress} is allocated ${owners.length} times`);
  }
  if (boot) {
    const told = Object.values(boot.addresses)
      .flat()
      .map((a) => a.addr)
      .sort();
    const held = ports.flatMap((p) => p.fixedIps.map((ip) => ip.ipAddress)).sort();
    if (told.join() !== held.join())
      fail(ctx, id, `workflow answered IPs ${told} but the server holds ${held}`);
  }

  const volumes = (await cloud.cinder.listVolumes({})).filter((v) => v.requestKey.startsWith(`${uuid}:`));
  const attachments = await cloud.cinder.listAttachments({ instanceUuid: uuid });
  const wantVolume = t.planned.kind === 'volume';
  const extraVolumes = dayTwo?.volumes.length ?? 0;
  if (volumes.length !== (wantVolume ? 1 : 0)) fail(ctx, id, `has ${volumes.length} volumes`);
  if (attachments.length !== (wantVolume ? 1 : 0) + extraVolumes)
    fail(ctx, id, `has ${attachments.length} attachments`);
  for (const volume of volumes) {
    const attachment = attachments.find((a) => a.volumeId === volume.id);
    if (
      volume.status !== 'in-use' ||
      attachment?.attachStatus !== 'attached' ||
      attachment.attachedHost !== host
    )
      fail(
        ctx,
        id,
        `volume ${volume.id} is ${volume.status}/${attachment?.attachStatus} on ${attachment?.attachedHost}`,
      );
    if (volume.providerLocation) {
      const digest = await md5Prefix(volume.providerLocation, ctx.image.size);
      if (digest !== ctx.image.checksum) fail(ctx, id, `volume ${volume.id} does not hold the image's bytes`);
    }
  }

  const allocation = await cloud.placement.getAllocations(uuid);
  const expected = resourcesFromFlavor(instance.flavor, instance.bootFromVolume);
  if (!allocation) fail(ctx, id, 'holds no placement allocation');
  else {
    if (allocation.providerUuid !== instance.node)
      fail(ctx, id, `allocation on provider ${allocation.providerUuid}, node is ${instance.node}`);
    for (const rc of RESOURCE_CLASSES) {
      if ((allocation.resources[rc] ?? 0) !== (expected[rc] ?? 0))
        fail(ctx, id, `allocation ${rc}=${allocation.resources[rc] ?? 0}, flavor needs ${expected[rc] ?? 0}`);
    }
  }
  const claims = await cloud.nova.listQuotaClaims(instance.projectId);
  const claim = claims.find((c) => c.consumerUuid === uuid);
  if (!claim || claim.resources.instances !== 1) fail(ctx, id, 'holds no quota for itself');

  const compute = ctx.hosts.get(host);
  if (!compute) {
    fail(ctx, id, `is on unknown host ${host}`);
    return;
  }
  if ((await compute.getPowerState(uuid)) !== power)
    fail(ctx, id, `no domain in power state ${power} on ${host}`);
  const vifs = (await compute.listVifs()).filter((v) => v.instanceUuid === uuid);
  if (vifs.length !== ports.length || !vifs.every((v) => ports.some((p) => p.id === v.portId)))
    fail(ctx, id, `${vifs.length} VIFs on ${host} for ${ports.length} ports`);
  const connections = (await compute.listVolumeConnections()).filter((c) => c.instanceUuid === uuid);
  if (connections.length !== (wantVolume ? 1 : 0) + extraVolumes)
    fail(ctx, id, `${connections.length} volume connections on ${host}`);
  if (!wantVolume) {
    const disk = path.join(compute.hostDir, 'instances', uuid, 'disk');
    // The fake driver's root disk is a sparse copy of the image; the qemu driver's a qcow2 overlay whose
    // backing file (the cached image in _base/) must be the image's bytes.
    const holder =
      compute.driver.diskFormat === 'qcow2' ? await backingFile(disk).catch(() => 'missing') : disk;
    const digest = await md5Prefix(holder, ctx.image.size).catch(() => 'missing');
    if (digest !== ctx.image.checksum)
      fail(ctx, id, `root disk on ${host} does not start with the image's bytes (${digest})`);
  }
  for (const [name, other] of ctx.hosts) {
    if (name !== host && name !== dayTwo?.evacuatedFrom && (await other.getDomain(uuid)))
      fail(ctx, id, `also has a domain on ${name}`);
  }
}

/** A deleted server: gone everywhere, its kept volume (if asked) standing alone. */
async function checkDeleted(ctx: Context, t: TrackedRequest, instance: Instance): Promise<void> {
  const { cloud } = ctx;
  const id = t.planned.requestId;
  if (t.deletion?.result?.outcome !== 'deleted')
    fail(ctx, id, `deleted, but its delete answered ${JSON.stringify(t.deletion)}`);
  if ((await cloud.neutron.listPorts({ deviceId: instance.uuid })).length > 0)
    fail(ctx, id, 'deleted but has ports');
  if (await cloud.placement.getAllocations(instance.uuid)) fail(ctx, id, 'deleted but holds an allocation');
  const volumes = (await cloud.cinder.listVolumes({})).filter((v) =>
    v.requestKey.startsWith(`${instance.uuid}:`),
  );
  const keep = t.planned.kind === 'volume' && t.planned.keepVolume;
  if (volumes.length !== (keep ? 1 : 0))
    fail(ctx, id, `deleted with ${volumes.length} volumes left (keep: ${keep})`);
  for (const v of volumes) if (v.status !== 'available') fail(ctx, id, `kept volume ${v.id} is ${v.status}`);
}

async function checkErrored(ctx: Context, t: TrackedRequest, instance: Instance): Promise<void> {
  const id = t.planned.requestId;
  if (instance.taskState !== null || instance.host !== null)
    fail(ctx, id, `ERROR with task ${instance.taskState} on host ${instance.host}`);
  const faults = await ctx.cloud.nova.listFaults(instance.uuid);
  if (faults.length === 0) fail(ctx, id, 'ERROR without a fault');
  // A terminated build is the reconciler's to finish, with its own fault.
  if (t.terminated && !faults.some((f) => f.details === 'BuildAbortedException'))
    fail(ctx, id, `terminated, but no reconciler fault: ${faults.map((f) => f.message).join('; ')}`);
  if (await ctx.cloud.placement.getAllocations(instance.uuid)) fail(ctx, id, 'ERROR but holds an allocation');
}

function verdictOf(ctx: Context, t: TrackedRequest, instances: Instance[]): RequestVerdict {
  const id = t.planned.requestId;
  const base = {
    requestId: id,
    kind: t.planned.kind,
    attempts: t.boot?.ok ? t.boot.result.attempts : 0,
    triedHosts: t.boot?.ok
      ? t.boot.result.triedHosts
      : ((t.boot?.details.triedHosts as string[] | undefined) ?? []),
    ...(t.terminated ? { workflow: 'terminated' as const } : t.resets ? { workflow: 'reset' as const } : {}),
  };
  if (!t.boot) {
    fail(ctx, id, 'no outcome: the boot never ended (lost)');
    return { ...base, outcome: 'LOST' };
  }
  if (instances.length > 1)
    fail(ctx, id, `booted ${instances.length} times: ${instances.map((i) => i.uuid).join(', ')}`);
  const instance = instances[0];
  const failureType = t.boot.ok ? undefined : t.boot.type;
  if (!instance) {
    if (t.terminated) fail(ctx, id, 'terminated while working on a host, yet no instance');
    if (t.boot.ok)
      fail(ctx, id, `workflow answered ACTIVE ${t.boot.result.id} but Nova has no such instance`);
    const allowed = REFUSED_AS[t.planned.kind];
    if (!allowed) fail(ctx, id, `refused (${failureType}) though it was an ordinary ${t.planned.kind} boot`);
    else if (!allowed.includes(failureType ?? ''))
      fail(ctx, id, `refused with ${failureType}, expected ${allowed.join('/')}`);
    return { ...base, outcome: 'REFUSED', ...(failureType ? { failureType } : {}) };
  }
  if (REFUSED_AS[t.planned.kind]) fail(ctx, id, `must be refused but instance ${instance.uuid} exists`);
  if (t.boot.ok && t.boot.result.id !== instance.uuid)
    fail(ctx, id, `workflow answered ${t.boot.result.id}, Nova has ${instance.uuid}`);
  if (!t.boot.ok && t.boot.details.instanceUuid && t.boot.details.instanceUuid !== instance.uuid)
    fail(ctx, id, `failure names ${String(t.boot.details.instanceUuid)}, Nova has ${instance.uuid}`);
  if (instance.deleted) {
    if (!t.deletion) fail(ctx, id, 'deleted though nobody asked');
    return { ...base, outcome: 'DELETED', host: t.deletion?.result?.host ?? undefined };
  }
  const dayTwo = ctx.dayTwo.get(instance.uuid);
  // Stopped by day two (and not started since) is as live as ACTIVE; day-two.ts checks it was asked for.
  if (instance.vmState === 'active' || (dayTwo && instance.vmState === dayTwo.vmState)) {
    // A boot terminated after its server went ACTIVE leaves it so (holding everything, checked below), and
    // a reset run that meets the server an earlier run built leaves it so and fails Conflict.
    const resetMetBuilt = t.resets !== undefined && !t.boot.ok && t.boot.type === 'Conflict';
    if (!t.boot.ok && !t.terminated && !resetMetBuilt)
      fail(ctx, id, `Nova says ACTIVE but the workflow failed: ${t.boot.type}`);
    if (t.deletion)
      fail(ctx, id, `asked to be deleted (${t.deletion.error ?? 'no answer'}) but still ACTIVE`);
    if (MUST_FAIL.includes(t.planned.kind)) fail(ctx, id, `must fail (${t.planned.kind}) but is ACTIVE`);
    return { ...base, outcome: 'ACTIVE', host: instance.host ?? undefined };
  }
  if (instance.vmState === 'error') {
    // A delete that failed for good leaves the server in error on its host (deleteInstance's failDelete).
    if (t.deletion)
      fail(ctx, id, `asked to be deleted, but its delete failed: ${t.deletion.error ?? 'no answer'}`);
    else if (t.boot.ok && !dayTwo?.errorAllowed)
      fail(ctx, id, 'the workflow answered ACTIVE but Nova says ERROR');
    else if (t.terminated && !t.boot.ok && t.boot.type !== 'TerminatedFailure')
      fail(ctx, id, `terminated, but its workflow ended in ${t.boot.type}`);
    return { ...base, outcome: 'ERROR', ...(failureType ? { failureType } : {}) };
  }
  fail(ctx, id, `ended in vm_state ${instance.vmState}/${instance.taskState}`);
  return { ...base, outcome: 'LOST' };
}

export interface VerifyInput {
  cloud: Cloud;
  hosts: Map<string, ComputeHost>;
  lostHost: string;
  fixtures: ChaosFixtures;
  tracked: TrackedRequest[];
  histories: Map<string, BootHistory>;
  dayTwo?: Map<string, ServerExpectation>;
}

export async function verify(input: VerifyInput): Promise<Verification> {
  const { cloud, tracked } = input;
  const location = await cloud.glance.imageLocation(input.fixtures.imageId);
  const ctx: Context = {
    cloud,
    hosts: input.hosts,
    fixtures: input.fixtures,
    image: { size: location.size, checksum: location.checksum },
    violations: [],
    dayTwo: input.dayTwo ?? new Map(),
  };

  const instances = await cloud.nova.listInstances({ allProjects: true, includeDeleted: true });
  const byRequest = new Map<string, Instance[]>();
  for (const instance of instances) {
    const list = byRequest.get(instance.requestId) ?? [];
    list.push(instance);
    byRequest.set(instance.requestId, list);
  }
  const known = new Set(tracked.map((t) => t.planned.requestId));
  for (const instance of instances) {
    if (!known.has(instance.requestId))
      ctx.violations.push(`instance ${instance.uuid} of unknown request ${instance.requestId}`);
  }

  // Work still running when the time bound ran out: one violation each, and no further checks of what is
  // by definition half done (its instance's audit findings included).
  const unfinished = tracked.filter((t) => t.unfinished);
  const unfinishedUuids = new Set(
    unfinished.flatMap((t) => (byRequest.get(t.planned.requestId) ?? []).map((i) => i.uuid)),
  );
  for (const t of unfinished)
    fail(ctx, t.planned.requestId, `its ${t.unfinished} was still running when the time bound ran out`);

  const verdicts: RequestVerdict[] = [];
  for (const t of tracked) {
    if (t.unfinished) {
      verdicts.push({
        requestId: t.planned.requestId,
        kind: t.planned.kind,
        outcome: 'UNFINISHED',
        attempts: 0,
        triedHosts: [],
      });
      continue;
    }
    const mine = byRequest.get(t.planned.requestId) ?? [];
    const verdict = verdictOf(ctx, t, mine);
    verdicts.push(verdict);
    const instance = mine[0];
    if (!instance) continue;
    try {
      if (verdict.outcome === 'ACTIVE') await checkActive(ctx, t, instance);
      if (verdict.outcome === 'DELETED') await checkDeleted(ctx, t, instance);
      // An ERROR left by a failed reboot or evacuation keeps its host; day-two.ts checks its fault.
      if (verdict.outcome === 'ERROR' && !ctx.dayTwo.get(instance.uuid)?.errorAllowed)
        await checkErrored(ctx, t, instance);
    } catch (err) {
      if (!isCloudError(err)) throw err;
      fail(ctx, t.planned.requestId, `could not be checked: ${err.message}`);
    }
  }

  // Over-commit: recorded usage equals the allocations, and never exceeds what each provider may give.
  for (const mismatch of await cloud.placement.auditUsage())
    ctx.violations.push(
      `placement: ${mismatch.resourceClass} on ${mismatch.providerUuid} used ${mismatch.recorded}, allocations ${mismatch.allocated}`,
    );
  for (const node of await cloud.nova.listComputeHosts()) {
    const provider = await cloud.placement.getResourceProvider(node.nodeUuid);
    for (const [rc, inv] of Object.entries(provider.inventories)) {
      if (inv && inv.used > inv.capacity)
        ctx.violations.push(`placement: ${node.host} over-committed on ${rc}: ${inv.used} > ${inv.capacity}`);
    }
  }

  // The lost host: a build whose work timed out there went on to an outcome and is not ACTIVE there. One
  // that succeeded must have moved on (the host listed as tried); one that failed may have been aborted for
  // another reason, its clean-up on the dead host then skipped (those time out there too).
  let moved = 0;
  for (const t of tracked) {
    const history = input.histories.get(t.planned.requestId);
    if (!history?.timeouts.some((x) => x.host === input.lostHost)) continue;
    const verdict = verdicts.find((v) => v.requestId === t.planned.requestId);
    if (!verdict || verdict.outcome === 'LOST') continue;
    if (verdict.outcome === 'ACTIVE' && verdict.host === input.lostHost)
      fail(ctx, t.planned.requestId, `timed out on the lost host ${input.lostHost} yet ACTIVE there`);
    const listed = verdict.triedHosts.includes(input.lostHost);
    if (listed) moved += 1;
    else if (verdict.outcome === 'ACTIVE' || verdict.outcome === 'DELETED')
      fail(ctx, t.planned.requestId, `timed out on ${input.lostHost} but does not list it as tried`);
  }

  const alive = [...input.hosts.values()].filter((h) => h.host !== input.lostHost);
  const lost = [...input.hosts.values()].filter((h) => h.host === input.lostHost);
  const leaks = (await auditLeaks(cloud, { hosts: alive })).filter(
    (leak) => !leak.instanceUuid || !unfinishedUuids.has(leak.instanceUuid),
  );
  for (const leak of leaks) ctx.violations.push(`leak: ${leak.kind} ${leak.id}: ${leak.detail}`);
  const lostHostLeftovers = (await auditLeaks(cloud, { hosts: lost })).filter(
    (f) => f.host === input.lostHost,
  );
  return { verdicts, violations: ctx.violations, leaks, lostHostLeftovers, movedOffLostHost: moved };
}
