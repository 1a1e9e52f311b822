/**
 * Keystone on the controller. A workflow carries an operation grant (see cloud/keystone/tokens.ts'
 * OperationScope): minted by the client or the API from the caller's token for this one workflow, checked
 * here against the workflow that presents it (its type and id, from the activity's Temporal context). The
 * grant is what every later step gets in place of a token; they validate it with allowExpired, as services
 * do with a service token for long-running work, so a build that outlives it still finishes (within
 * Keystone's allow_expired window). A token or a password in a workflow input is refused: stored histories
 * that carry one still replay (activities do not run on replay), but no new workflow runs on one.
 */
import { Context } from '@temporalio/activity';
import { decodeJwt } from 'jose';
import { CloudError } from '../cloud/errors';
import type { Keystone, PolicyRule, PolicyTarget, RequestContext } from '../cloud/keystone';
import { enforce } from '../cloud/keystone';
import type { BootAuth, Session } from '../workflows/types';
import { adaptAll } from './failures';

/** The slice of Keystone other roles need (keystonemiddleware's validation, for grants). */
export type TokenValidator = Pick<Keystone, 'validateGrant'>;

/** The calling workflow's grant, checked against that workflow: fresh unless `allowExpired`. */
export function contextOfGrant(
  identity: TokenValidator,
  grant: string,
  options: { allowExpired?: boolean } = {},
): Promise<RequestContext> {
  let info: Context['info'] | undefined;
  try {
    info = Context.current().info;
  } catch {
    info = undefined; // called outside an activity: there is no workflow the grant could be for
  }
  const { workflowExecution, workflowType } = info ?? {};
  // A grant is for a workflow; an activity run any other way has none to present.
  if (!workflowType || !workflowExecution?.workflowId) {
    return Promise.reject(new CloudError('Unauthorized', 'An operation grant is valid only in its workflow'));
  }
  const presenter = { workflowType, workflowId: workflowExecution.workflowId };
  return presentedBy(grant, presenter).then((operation) =>
    identity.validateGrant(grant, operation, { allowExpired: options.allowExpired === true }),
  );
}

/**
 * The workflow a grant may be checked against: the presenting workflow itself, or, for a child workflow (a
 * host-wide evacuate's evacuateServer), the parent the grant was made for, as Temporal's server records the
 * child's parent (asked here, never taken from the workflow's own word).
 */
async function presentedBy(
  grant: string,
  presenter: { workflowType: string; workflowId: string },
): Promise<{ workflowType: string; workflowId: string }> {
  let claimed: unknown;
  try {
    claimed = decodeJwt(grant).bootflow_op;
  } catch {
    return presenter; // not even a JWT: validateGrant refuses it
  }
  const op = claimed as { workflow_type?: unknown; workflow_id?: unknown } | undefined;
  if (typeof op?.workflow_id !== 'string' || typeof op.workflow_type !== 'string') return presenter;
  if (op.workflow_id === presenter.workflowId) return presenter;
  const { client } = Context.current();
  const described = await client.workflow.getHandle(presenter.workflowId).describe();
  if (described.parentExecution?.workflowId !== op.workflow_id) return presenter;
  return { workflowType: op.workflow_type, workflowId: op.workflow_id };
}

/** Validation of a grant presented after the request was accepted: expired ones still pass. */
export function contextForOngoingWork(identity: TokenValidator, grant: string): Promise<RequestContext> {
  return contextOfGrant(identity, grant, { allowExpired: true });
}

function sessionOf(grant: string, ctx: RequestContext): Session {
  return {
    token: grant,
    expiresAt: ctx.expiresAt,
    userId: ctx.userId,
    projectId: ctx.projectId,
    projectName: ctx.projectName,
    roles: [...ctx.roles],
  };
}

export function createIdentityActivities(keystone: Keystone) {
  return adaptAll({
    /** The workflow's operation grant → a validated session (the grant stands in for a token after it). */
    async authenticate(auth: BootAuth): Promise<Session> {
      if (!('grant' in auth)) {
        throw new CloudError(
          'Unauthorized',
          'A workflow must carry an operation grant for itself (auth.grant): a token or a password in a ' +
            "workflow input is no longer accepted. Start it with bootflow's client or the OpenStack API.",
        );
      }
      return sessionOf(auth.grant, await contextOfGrant(keystone, auth.grant));
    },

    /** Policy enforcement with a fresh (not expired) grant: Forbidden when the rule denies it. */
    async authorize(input: { token: string; rule: PolicyRule; target?: PolicyTarget }): Promise<void> {
      enforce(await contextOfGrant(keystone, input.token), input.rule, input.target);
    },
  });
}

export type IdentityActivities = ReturnType<typeof createIdentityActivities>;
