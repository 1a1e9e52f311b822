/**
 * Cooperative stopping of a build. The build runs in a non-cancellable scope and checks this before each
 * step and inside its durable waits: a failed parallel branch, or the workflow's own cancellation, stops
 * the others at their next step boundary instead of sending cancellations to activities in flight (whose
 * effects would then be unknown). Every activity the build runs is short or bounded, so a stop is prompt,
 * and whatever an activity finished is known, so its undo is registered.
 */
import { condition, sleep } from '@temporalio/workflow';
import { runBranches } from './branches';
import { call, type ActivityStub, type OneInputActivity } from './proxies';

export class Abort {
  private reason: { error: unknown } | undefined;
  private keepsTimers = false;
  /** One wait for the stop, shared by every sleep (a condition per sleep would be re-checked forever). */
  private stopped: Promise<void> | undefined;

  constructor(private readonly parent?: Abort) {}

  /** A scope that stops when this one does, or on its own (one build attempt inside the build). */
  child(): Abort {
    return new Abort(this);
  }

  /** Sleeps leave their timers to fire (createInstance's patch 'reset-stable-instance-uuid'). */
  keepTimers(): void {
    this.keepsTimers = true;
  }

  private get timersKept(): boolean {
    return this.keepsTimers || (this.parent?.timersKept ?? false);
  }

  get requested(): boolean {
    return this.reason !== undefined || (this.parent?.requested ?? false);
  }

  private get error(): unknown {
    return this.reason ? this.reason.error : this.parent?.error;
  }

  /** The first reason wins. */
  trigger(error: unknown): void {
    this.reason ??= { error };
  }

  check(): void {
    if (this.requested) throw this.error;
  }

  /**
   * A durable wait that ends early when the build stops. Its timer is left to fire, not cancelled: a
   * stop lands in the workflow task of a cancel request or of a failed step, and a timer may fire while
   * that task is with the worker. The time-skipping test server then refuses the CancelTimer ("invalid
   * history builder state for action", temporalio/sdk-java#3088) and strands the run; local activities
   * make those tasks longer, and delete-while-building met it. A pending timer at the end of a run is
   * simply dropped. Runs from before createInstance's 'reset-stable-instance-uuid' patch cancel it.
   */
  async sleep(ms: number): Promise<void> {
    if (this.timersKept) {
      this.stopped ??= condition(() => this.requested);
      await Promise.race([sleep(ms), this.stopped]);
    } else {
      await condition(() => this.requested, ms);
    }
    this.check();
  }

  /** A forward step: not started once the build stops. Undo steps use `call` directly. */
  call<F extends OneInputActivity>(
    stub: ActivityStub<F>,
    summary: string,
    input: Parameters<F>[0],
  ): Promise<Awaited<ReturnType<F>>> {
    this.check();
    return call(stub, summary, input);
  }

  /**
   * Runs the branches side by side (or, with `parallel` false, one after the other). The first failure
   * stops the others (at their next step; in order, the later ones at their first) and, once they have all
   * settled so that every undo they registered is known, is the one thrown.
   */
  async all<T extends readonly unknown[]>(
    branches: { [K in keyof T]: (abort: Abort) => Promise<T[K]> },
    parallel = true,
  ): Promise<T> {
    const scope = this.child();
    let first: { error: unknown } | undefined;
    const values = await runBranches<unknown[]>(
      parallel,
      branches.map(
        (branch) => () =>
          branch(scope).catch((error: unknown) => {
            if (!first) {
              first = { error };
              scope.trigger(error);
            }
            return undefined;
          }),
      ),
    );
    if (first) throw first.error;
    return values as unknown as T;
  }
}
