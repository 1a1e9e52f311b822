/**
 * Keystone on the controller: the caller's credentials are exchanged once for a token; only the token goes
 * on to the other steps. Later steps validate it with allowExpired, as services do with a service token
 * for long-running work, so a build that outlives the token still finishes (within Keystone's
 * allow_expired window).
 */
import type { Keystone, PolicyRule, PolicyTarget, RequestContext } from '../cloud/keystone';
import { enforce } from '../cloud/keystone';
import type { BootAuth, Session } from '../workflows/types';
import { adaptAll } from './failures';

/** The slice of Keystone other roles need (keystonemiddleware's token validation). */
export type TokenValidator = Pick<Keystone, 'validateToken'>;

/** Validation of a token presented after the request was accepted: expired tokens still pass. */
export function contextForOngoingWork(identity: TokenValidator, token: string): Promise<RequestContext> {
  return identity.validateToken(token, { allowExpired: true });
}

function sessionOf(token: string, ctx: RequestContext): Session {
  return {
    token,
    expiresAt: ctx.expiresAt,
    userId: ctx.userId,
    projectId: ctx.projectId,
    projectName: ctx.projectName,
    roles: [...ctx.roles],
  };
}

export function createIdentityActivities(keystone: Keystone) {
  return adaptAll({
    /** Password or token → a validated session. Never returns the password. */
    async authenticate(auth: BootAuth): Promise<Session> {
      if ('token' in auth) return sessionOf(auth.token, await keystone.validateToken(auth.token));
      const result = await keystone.authenticate(auth.credentials);
      return sessionOf(result.token, result.context);
    },

    /** Policy enforcement with a fresh (not expired) token: Forbidden when the rule denies it. */
    async authorize(input: { token: string; rule: PolicyRule; target?: PolicyTarget }): Promise<void> {
      enforce(await keystone.validateToken(input.token), input.rule, input.target);
    },
  });
}

export type IdentityActivities = ReturnType<typeof createIdentityActivities>;
