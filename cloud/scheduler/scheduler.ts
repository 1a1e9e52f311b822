/**
 * nova-scheduler: allocation candidates from placement, Nova's filters and weighers, then a claim on the
 * best host (the next one when a racing request took the room first) and up to max_attempts − 1 unclaimed
 * alternates for the conductor's reschedules.
 */
import { z } from 'zod';
import { CloudError, isCloudError } from '../errors';
import type { Allocation, Placement, Resources } from '../placement';
import { idSchema, parseRequest, uuidSchema } from '../validation';
import {
  antiAffinityFull,
  filterHosts,
  serverGroupFilterSpec,
  type CandidateHost,
  type FilterSpec,
} from './filters';
import type { HostState, HostStateSource } from './host-state';
import {
  flavorSchema,
  imageRequirements,
  resourcesFromFlavor,
  selectRequestSchema,
  type ParsedSelectRequest,
  type SchedulerFlavor,
  type SelectDestinationsRequest,
} from './request';
import {
  groupSpec,
  KeyedQueue,
  memberHosts,
  type SchedulerHintSource,
  type SchedulingHints,
  type ServerGroupSource,
} from './server-group';
import { defaultWeighers, weighHosts, type HostWeigher, type WeightMultipliers } from './weighers';

export interface Destination {
  host: string;
  nodeUuid: string;
  providerUuid: string;
}

export interface Selection {
  selected: Destination;
  /** Not claimed: the conductor claims one with claimAlternate when a build on `selected` fails. */
  alternates: Destination[];
  /** The allocation made for `selected`. */
  allocation: Allocation;
}

export interface SchedulerOptions {
  placement: Placement;
  hosts: HostStateSource;
  /**
   * The server group of the instance being placed, looked up by its uuid when the request names none
   * (Nova's RequestSpec.instance_group): the workflow's request stays as it was.
   */
  groups?: ServerGroupSource;
  /**
   * The same_host / different_host hints of the instance being placed, looked up by its uuid when the
   * request carries none (Nova's RequestSpec.scheduler_hints), as the group is.
   */
  hints?: SchedulerHintSource;
  weights?: WeightMultipliers;
  /**
   * Candidates asked of placement at a time (Nova's max_placement_results; 1000 there). Placement returns
   * them best-first for the RAM weigher and a page the filters reject entirely is followed by the next one,
   * so a small page loses nothing and keeps selection over 10,000 hosts fast.
   */
  maxPlacementResults?: number;
  /** Nova's host_subset_size: pick at random among the best N (default 1: always the best). */
  hostSubsetSize?: number;
  random?: () => number;
}

export const NO_VALID_HOST_MESSAGE = 'No valid host was found. There are not enough hosts available.';

const destinationSchema = z.strictObject({
  host: z.string().min(1).max(255),
  nodeUuid: uuidSchema,
  providerUuid: uuidSchema,
});

const alternateClaimSchema = z.strictObject({
  instanceUuid: uuidSchema,
  alternate: destinationSchema,
  flavor: flavorSchema,
  projectId: idSchema,
  userId: idSchema,
  bootFromVolume: z.boolean().default(false),
});

function destinationOf(state: HostState): Destination {
  return { host: state.host, nodeUuid: state.nodeUuid, providerUuid: state.nodeUuid };
}

/** A claim another request won, or a provider with no room left: the next host may do. */
function lostRace(err: unknown): err is CloudError {
  return isCloudError(err, 'AllocationCapacityExceeded') || isCloudError(err, 'Conflict');
}

interface Round {
  hosts: CandidateHost[];
  candidates: number;
  rejectedBy: Record<string, number>;
}

export class Scheduler {
  private readonly placement: Placement;
  private readonly source: HostStateSource;
  private readonly weighers: HostWeigher[];
  private readonly pageSize: number;
  private readonly subsetSize: number;
  private readonly random: () => number;
  private readonly stacking: boolean;
  private readonly groups: ServerGroupSource | undefined;
  private readonly hints: SchedulerHintSource | undefined;
  /** The members of one group are placed one at a time (each sees the claims of those before it). */
  private readonly groupQueue = new KeyedQueue();

  constructor(options: SchedulerOptions) {
    this.placement = options.placement;
    this.source = options.hosts;
    this.groups = options.groups;
    this.hints = options.hints;
    this.weighers = defaultWeighers(options.weights);
    this.pageSize = Math.max(1, Math.min(options.maxPlacementResults ?? 100, 100_000));
    this.subsetSize = Math.max(1, options.hostSubsetSize ?? 1);
    this.random = options.random ?? Math.random;
    this.stacking = (options.weights?.ram ?? 1) < 0;
  }

  async selectDestinations(input: SelectDestinationsRequest): Promise<Selection> {
    const req = await this.withAffinityHints(parseRequest(selectRequestSchema, input, 'scheduling request'));
    if (req.serverGroup || !this.groups) return this.select(req);
    const groups = this.groups;
    const group = await groups.schedulingGroupOf(req.instanceUuid);
    if (!group) return this.select(req);
    return this.groupQueue.run(group.uuid, async () => {
      // Read again in the queue: the members placed meanwhile hold their claims now.
      const now = await groups.schedulingGroupOf(req.instanceUuid);
      if (!now) return this.select(req);
      const hosts = await memberHosts(this.placement, this.source, now);
      return this.select({ ...req, serverGroup: groupSpec(now, hosts) });
    });
  }

  /** The same_host / different_host hints stored with the instance, as the hosts of what they name. */
  private async withAffinityHints(req: ParsedSelectRequest): Promise<ParsedSelectRequest> {
    if (req.affinityHints || !this.hints) return req;
    const hints = await this.hints.schedulingHintsOf(req.instanceUuid);
    if (!hints || (!hints.sameHost && !hints.differentHost)) return req;
    const hostsOf = (members: SchedulingHints['sameHost']) =>
      memberHosts(this.placement, this.source, { members: members ?? [] });
    return {
      ...req,
      affinityHints: {
        ...(hints.sameHost ? { sameHost: await hostsOf(hints.sameHost) } : {}),
        ...(hints.differentHost ? { differentHost: await hostsOf(hints.differentHost) } : {}),
      },
    };
  }

  private async select(req: ParsedSelectRequest): Promise<Selection> {
    const resources = resourcesFromFlavor(req.flavor, req.bootFromVolume);
    const spec: FilterSpec = {
      image: imageRequirements(req.image.properties),
      ignoreHosts: new Set(req.excludedHosts),
      ...(req.availabilityZone ? { availabilityZone: req.availabilityZone } : {}),
      ...(req.serverGroup ? { serverGroup: serverGroupFilterSpec(req.serverGroup) } : {}),
      ...(req.affinityHints?.sameHost ? { sameHost: new Set(req.affinityHints.sameHost) } : {}),
      ...(req.affinityHints?.differentHost
        ? { differentHost: new Set(req.affinityHints.differentHost) }
        : {}),
    };

    const existing = await this.placement.getAllocations(req.instanceUuid);
    if (existing) return this.resume(req, spec, resources, existing);

    const { exclude, only } = await this.pushdown(spec);
    const tried = new Set<string>();
    const rejectedBy: Record<string, number> = {};
    let examined = 0;
    let offset = 0;
    for (;;) {
      const round = await this.round(resources, spec, [...exclude, ...tried], only, offset);
      examined += round.candidates;
      for (const [name, n] of Object.entries(round.rejectedBy))
        rejectedBy[name] = (rejectedBy[name] ?? 0) + n;
      if (round.hosts.length === 0) {
        if (round.candidates < this.pageSize) {
          throw new CloudError('NoValidHost', NO_VALID_HOST_MESSAGE, {
            instanceUuid: req.instanceUuid,
            candidatesExamined: examined,
            rejectedBy,
            lostClaims: tried.size,
          });
        }
        offset += round.candidates; // the filters rejected the whole page: look further down
        continue;
      }
      for (const [i, host] of round.hosts.entries()) {
        try {
          const allocation = await this.claimOn(req, resources, host.state);
          const alternates = round.hosts.slice(i + 1, i + req.maxAttempts).map((h) => destinationOf(h.state));
          return { selected: destinationOf(host.state), alternates, allocation };
        } catch (err) {
          if (isCloudError(err, 'Conflict') && err.details.reason === 'ConsumerHasAllocations') {
            // The same instance was placed by a concurrent call: answer as its retry would.
            const now = await this.placement.getAllocations(req.instanceUuid);
            if (now) return this.resume(req, spec, resources, now);
          }
          if (!lostRace(err)) throw err;
          tried.add(host.candidate.providerUuid); // excluded from the next round, so the offset stays put
        }
      }
    }
  }

  /** Claims an alternate returned by selectDestinations (after the build on the selected host failed). */
  async claimAlternate(
    instanceUuid: string,
    alternate: Destination,
    flavor: SchedulerFlavor,
    projectId: string,
    userId: string,
    options: { bootFromVolume?: boolean } = {},
  ): Promise<Allocation> {
    const req = parseRequest(
      alternateClaimSchema,
      { instanceUuid, alternate, flavor, projectId, userId, ...options },
      'alternate claim',
    );
    const claim = () =>
      this.placement.claim({
        consumerUuid: req.instanceUuid,
        providerUuid: req.alternate.providerUuid,
        resources: resourcesFromFlavor(req.flavor, req.bootFromVolume),
        projectId: req.projectId,
        userId: req.userId,
      });
    const groups = this.groups;
    const group = groups ? await groups.schedulingGroupOf(req.instanceUuid) : null;
    if (!groups || !group) return claim();
    // The alternate was good when it was chosen; members placed since may have taken it (Nova's late check).
    return this.groupQueue.run(group.uuid, async () => {
      const now = await groups.schedulingGroupOf(req.instanceUuid);
      if (now) {
        const spec = serverGroupFilterSpec(
          groupSpec(now, await memberHosts(this.placement, this.source, now)),
        );
        const host = req.alternate.host;
        const fits =
          spec.policy === 'anti-affinity'
            ? (spec.members.get(host) ?? 0) < spec.maxServerPerHost
            : spec.policy !== 'affinity' || spec.hosts.size === 0 || spec.hosts.has(host);
        if (!fits) {
          throw new CloudError(
            'Conflict',
            `Host ${host} no longer fits the ${spec.policy} policy of group ${now.uuid}`,
            {
              reason: 'ServerGroupPolicy',
            },
          );
        }
      }
      return claim();
    });
  }

  /** One page of candidates, joined with Nova's host states, filtered, weighed and ordered. */
  private async round(
    resources: Resources,
    spec: FilterSpec,
    exclude: string[],
    only: string[] | undefined,
    offset: number,
  ): Promise<Round> {
    const candidates = await this.placement.allocationCandidates(resources, {
      limit: this.pageSize,
      offset,
      excludeProviderUuids: exclude,
      ...(only ? { onlyProviderUuids: only } : {}),
      order: this.stacking ? 'least-free-memory' : 'most-free-memory',
    });
    if (candidates.length === 0) return { hosts: [], candidates: 0, rejectedBy: {} };
    const states = await this.source.listHostStates({ nodeUuids: candidates.map((c) => c.providerUuid) });
    const byNode = new Map(states.map((s) => [s.nodeUuid, s]));
    const joined: CandidateHost[] = [];
    for (const candidate of candidates) {
      const state = byNode.get(candidate.providerUuid);
      if (state) joined.push({ state, candidate });
    }
    const { passed, rejectedBy } = filterHosts(joined, spec);
    if (joined.length < candidates.length) rejectedBy.NoComputeNode = candidates.length - joined.length;
    const weighed = weighHosts(passed, this.weighers, spec).map((w) => w.host);
    return { hosts: this.pickFromSubset(weighed), candidates: candidates.length, rejectedBy };
  }

  /** host_subset_size: one of the best N goes first, the rest keep their order. */
  private pickFromSubset(hosts: CandidateHost[]): CandidateHost[] {
    const n = Math.min(this.subsetSize, hosts.length);
    if (n <= 1) return hosts;
    const chosen = Math.floor(this.random() * n);
    const [host] = hosts.splice(chosen, 1);
    return host ? [host, ...hosts] : hosts;
  }

  /** Hosts that can be excluded (or required) in placement's query itself instead of after it. */
  private async pushdown(spec: FilterSpec): Promise<{ exclude: string[]; only?: string[] }> {
    const avoid = new Set(spec.ignoreHosts);
    if (spec.serverGroup?.policy === 'anti-affinity')
      for (const h of antiAffinityFull(spec.serverGroup)) avoid.add(h);
    for (const h of spec.differentHost ?? []) avoid.add(h);
    const exclude = await this.nodesOf(avoid);
    let only: Set<string> | undefined;
    if (spec.serverGroup?.policy === 'affinity' && spec.serverGroup.hosts.size > 0)
      only = new Set(spec.serverGroup.hosts);
    if (spec.sameHost) only = new Set([...spec.sameHost].filter((h) => !only || only.has(h)));
    // No host can pass (same_host naming nothing placed): the filters reject every candidate.
    if (only && only.size === 0) return { exclude };
    return only ? { exclude, only: await this.nodesOf(only) } : { exclude };
  }

  private async nodesOf(hosts: ReadonlySet<string>): Promise<string[]> {
    if (hosts.size === 0) return [];
    const states = await this.source.listHostStates({ hosts: [...hosts] });
    return states.filter((s) => hosts.has(s.host)).map((s) => s.nodeUuid);
  }

  private claimOn(req: ParsedSelectRequest, resources: Resources, state: HostState): Promise<Allocation> {
    return this.placement.claim({
      consumerUuid: req.instanceUuid,
      providerUuid: state.nodeUuid,
      resources,
      projectId: req.projectId,
      userId: req.userId,
    });
  }

  /**
   * The instance already holds an allocation: a retry of a selection that succeeded. Answer with the same
   * host (re-checking the claim is the same) and fresh alternates.
   */
  private async resume(
    req: ParsedSelectRequest,
    spec: FilterSpec,
    resources: Resources,
    existing: Allocation,
  ): Promise<Selection> {
    const [state] = (await this.source.listHostStates({ nodeUuids: [existing.providerUuid] })).filter(
      (s) => s.nodeUuid === existing.providerUuid,
    );
    if (!state) {
      throw new CloudError(
        'Conflict',
        `Instance ${req.instanceUuid} holds allocations on resource provider ${existing.providerUuid}, which is no compute node`,
        { reason: 'ConsumerHasAllocations', providerUuid: existing.providerUuid },
      );
    }
    if (spec.ignoreHosts.has(state.host)) {
      throw new CloudError(
        'BadRequest',
        `Instance ${req.instanceUuid} still holds allocations on host ${state.host}, which this request excludes; release them before rescheduling`,
        { host: state.host, providerUuid: existing.providerUuid },
      );
    }
    const allocation = await this.claimOn(req, resources, state); // idempotent; Conflict if it differs
    const { exclude, only } = await this.pushdown(spec);
    const round = await this.round(resources, spec, [...exclude, state.nodeUuid], only, 0);
    const alternates = round.hosts.slice(0, req.maxAttempts - 1).map((h) => destinationOf(h.state));
    return { selected: destinationOf(state), alternates, allocation };
  }
}
