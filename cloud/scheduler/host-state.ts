/**
 * What the scheduler knows of each compute node besides placement's numbers: Nova's service and compute
 * node records. Nova implements HostStateSource; the scheduler never reads Nova's database itself.
 */
export interface HostState {
  host: string;
  /** The compute node's uuid, which is also its resource provider's uuid in placement. */
  nodeUuid: string;
  /** Heartbeat seen within the service-down time (Nova: 60 s). */
  up: boolean;
  /** The nova-compute service is disabled by an operator. */
  disabled: boolean;
  availabilityZone: string;
  cpuArch: string;
  hypervisorType: string;
  /** Consecutive build failures on this host (reset by a success): input of the BuildFailureWeigher. */
  failedBuilds: number;
}

/** A hint that narrows what is needed; an implementation may ignore it and return more. */
export interface HostStateFilter {
  nodeUuids?: readonly string[];
  hosts?: readonly string[];
}

export interface HostStateSource {
  listHostStates(filter?: HostStateFilter): Promise<readonly HostState[]> | readonly HostState[];
}

/** A HostStateSource over a fixed list (tests, tools); `set` and `update` change it in place. */
export class StaticHostStateSource implements HostStateSource {
  private readonly byHost = new Map<string, HostState>();

  constructor(states: readonly HostState[] = []) {
    for (const s of states) this.byHost.set(s.host, { ...s });
  }

  set(state: HostState): void {
    this.byHost.set(state.host, { ...state });
  }

  update(host: string, patch: Partial<Omit<HostState, 'host'>>): void {
    const current = this.byHost.get(host);
    if (!current) throw new Error(`unknown host ${host}`);
    this.byHost.set(host, { ...current, ...patch });
  }

  listHostStates(filter: HostStateFilter = {}): readonly HostState[] {
    const nodes = filter.nodeUuids ? new Set(filter.nodeUuids) : undefined;
    const hosts = filter.hosts ? new Set(filter.hosts) : undefined;
    const out: HostState[] = [];
    for (const s of this.byHost.values()) {
      if (nodes && !nodes.has(s.nodeUuid)) continue;
      if (hosts && !hosts.has(s.host)) continue;
      out.push({ ...s });
    }
    return out;
  }
}
