/**
 * The top of a V8 CPU profile (`node --cpu-prof`, e.g. of a bench run: its workers, embedded cloud and API
 * all run in the bench process): self time per function and per module (an npm package, a directory of
 * ours, or V8/Node's own), so the hot spots of a boot are listed without opening DevTools.
 *
 *   node --import tsx scripts/bench/profile-top.ts <file.cpuprofile> [--top 30]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The package (`@scope/name`), our top-level directory, or what V8 reports for native frames. */
export function moduleOf(url: string, functionName: string): string {
  if (!url) return `(${functionName || 'native'})`;
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) {
    const [first, second] = path.slice(inModules + '/node_modules/'.length).split('/');
    return first?.startsWith('@') ? `${first}/${second}` : (first ?? path);
  }
  if (path.startsWith('node:')) return 'node:' + (path.slice(5).split('/')[0] ?? '');
  const ours = /\/(activities|api|cloud|lib|workflows|scripts|common|test)\//.exec(path);
  return ours ? `bootflow/${ours[1]}` : path;
}

export function topOfProfile(profile: CpuProfile): {
  totalMs: number;
  functions: Array<{ name: string; ms: number; share: number }>;
  modules: Array<{ name: string; ms: number; share: number }>;
} {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const functions = new Map<string, number>();
  const modules = new Map<string, number>();
  let total = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    if (functionName === '(idle)') continue;
    total += us;
    const where = url
      ? `${url.replace(/^.*\/node_modules\//, '').replace(/^.*\/(?=[^/]+\/[^/]+$)/, '')}:${lineNumber + 1}`
      : '';
    const fn = `${functionName || '(anonymous)'} ${where}`.trim();
    functions.set(fn, (functions.get(fn) ?? 0) + us);
    const mod = moduleOf(url, functionName);
    modules.set(mod, (modules.get(mod) ?? 0) + us);
  }
  const ranked = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({
        name,
        ms: Math.round(us / 1000),
        share: Math.round((us / total) * 1000) / 10,
      }));
  return { totalMs: Math.round(total / 1000), functions: ranked(functions), modules: ranked(modules) };
}

if (require.main === module) {
  const [file, flag, n] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: profile-top.ts <file.cpuprofile> [--top N]\n');
    process.exit(2);
  }
  const top = flag === '--top' ? Number(n) : 30;
  const result = topOfProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  const lines = [`busy (not idle) ${result.totalMs} ms`, '', 'self time by module:'];
  for (const m of result.modules.slice(0, top))
    lines.push(`  ${m.share.toFixed(1).padStart(5)} %  ${String(m.ms).padStart(7)} ms  ${m.name}`);
  lines.push('', 'self time by function:');
  for (const f of result.functions.slice(0, top))
    lines.push(`  ${f.share.toFixed(1).padStart(5)} %  ${String(f.ms).padStart(7)} ms  ${f.name}`);
  process.stdout.write(lines.join('\n') + '\n');
}
