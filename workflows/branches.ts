/**
 * Independent branches of a boot, run side by side, or one after the other in the order given. The
 * one-after-the-other form exists for the benchmarks only (createInstanceSequential, the skeleton's
 * `sequential`): it measures what running the branches side by side saves.
 */
export type Branches<T extends readonly unknown[]> = { [K in keyof T]: () => Promise<T[K]> };

export async function runBranches<T extends readonly unknown[]>(
  parallel: boolean,
  branches: Branches<T>,
): Promise<T> {
  if (parallel) return (await Promise.all(branches.map((branch) => branch()))) as unknown as T;
  const out: unknown[] = [];
  for (const branch of branches) out.push(await branch());
  return out as unknown as T;
}
