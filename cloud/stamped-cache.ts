/**
 * A bounded map of copies, each stamped with the generation its source was at when it was read and with an
 * end time: a copy serves only while its source is still at that generation and before its end. The oldest
 * entry goes first when the map is full. What a generation counts is the user's: the validated-token
 * cache's revocations (keystone/token-cache.ts), the tables a lookup came from (cloud/db-writes.ts, for the
 * compute API's create lookups). Those stay two counters: the token cache must keep its copies across
 * writes that do not touch a token (a project's tags or description, the same table as its name), and drop
 * them on a revocation learned without a write here, which table counters cannot tell.
 */
interface Entry<V> {
  value: V;
  generation: number;
  until: number;
}

export class StampedCache<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(readonly maxEntries: number) {}

  /** The copy, if its source is still at `generation` and `now` is before its end; a stale one is dropped. */
  get(key: string, generation: number, now: number): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.generation === generation && now < entry.until) return entry.value;
    this.entries.delete(key);
    return undefined;
  }

  set(key: string, value: V, generation: number, until: number): void {
    this.entries.delete(key);
    this.entries.set(key, { value, generation, until });
    // A Map iterates in insertion order: the first key is the oldest entry.
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** Drops the copy, if it is still `value` (a later set under the key is kept). */
  deleteIf(key: string, value: V): void {
    if (this.entries.get(key)?.value === value) this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
