/**
 * keystonemiddleware's token cache: a token validated once is taken as valid for `token_cache_time` (300 s)
 * without asking Keystone again, keyed by a SHA-256 of the token (never the token itself), bounded in size.
 *
 * The bound on revocation is keystonemiddleware's: a token revoked (or its user disabled, its role removed)
 * through this process's Keystone is dropped from this cache at once; by another process, it is still taken
 * here until its entry is `ttlMs` old (default 300 s), never past the token's own expiry. Operation grants are
 * never cached: every activity checks its grant against the revocation events, so work started from such a
 * token is refused at once.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../clock';
import { StampedCache } from '../stamped-cache';
import type { RequestContext } from './context';

/** keystonemiddleware's token_cache_time default. */
export const DEFAULT_TOKEN_CACHE_SECONDS = 300;
/** Entries kept at most; the oldest goes first. */
export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;

/** A validated project-scoped token: its context and how it was obtained (a grant's `methods`). */
export interface ValidatedToken {
  context: RequestContext;
  methods: string[];
  /** The application credential a token came from: its grants stay restricted to that credential's roles. */
  applicationCredentialId?: string;
}

export class ValidatedTokenCache {
  private readonly entries: StampedCache<ValidatedToken>;
  /** Bumped by every forget: a validation that began before it must not store what it read. */
  private epoch = 0;

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs: number,
    maxEntries: number,
  ) {
    this.entries = new StampedCache(maxEntries);
  }

  get enabled(): boolean {
    return this.ttlMs > 0 && this.entries.maxEntries > 0;
  }

  /** Where a validation starts: hand it back to `put`. */
  get generation(): number {
    return this.epoch;
  }

  get(token: string): ValidatedToken | undefined {
    if (!this.enabled) return undefined;
    return this.entries.get(keyOf(token), this.epoch, this.clock.now());
  }

  /** Stores a validation that began at `generation`, unless something was revoked since. */
  put(token: string, validated: ValidatedToken, generation: number): void {
    if (!this.enabled || generation !== this.epoch) return;
    const until = Math.min(this.clock.now() + this.ttlMs, validated.context.expiresAt);
    // Shared by every request that presents the token: nobody may change it.
    Object.freeze(validated.context.roles);
    Object.freeze(validated.context);
    Object.freeze(validated.methods);
    this.entries.set(keyOf(token), Object.freeze(validated), generation, until);
  }

  /** After a revocation or any change to who may do what: nothing validated before it is trusted. */
  forget(): void {
    this.epoch += 1;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}

const keyOf = (token: string): string => createHash('sha256').update(token).digest('hex');
