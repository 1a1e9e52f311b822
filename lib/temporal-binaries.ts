/**
 * Finds the Temporal binaries this machine can run: the `temporal` CLI (dev server + Web UI) and the Java
 * time-skipping `temporal-test-server`. Order: explicit env var, project virtualenv, PATH, SDK download.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import path from 'node:path';
import type { EphemeralServerExecutable } from '@temporalio/testing';

export type TemporalBinaryKind = 'cli' | 'test-server';

interface BinarySpec {
  envVar: string;
  fileName: string;
}

const SPECS: Record<TemporalBinaryKind, BinarySpec> = {
  cli: { envVar: 'TEMPORAL_CLI_PATH', fileName: 'temporal' },
  'test-server': { envVar: 'TEMPORAL_TEST_SERVER_PATH', fileName: 'temporal-test-server' },
};

/**
 * The repository's root (where package.json is): one level up from lib/ when run from the sources, two
 * from dist/lib/ when run from the compiled build.
 */
function projectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) return path.resolve(from, '..');
  }
}

export const PROJECT_ROOT = projectRoot(__dirname);
export const DEFAULT_VENV_DIR = path.join(PROJECT_ROOT, '.temporal', 'venv');

export type ResolvedBinary =
  { source: 'env' | 'venv' | 'path'; path: string } | { source: 'download'; reason: string };

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  venvDir?: string;
}

export class TemporalBinaryNotFound extends Error {
  override readonly name = 'TemporalBinaryNotFound';
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findOnPath(fileName: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, fileName);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

export function missingBinaryMessage(kind: TemporalBinaryKind): string {
  const { envVar, fileName } = SPECS[kind];
  return (
    `${fileName} not found: run \`bash scripts/setup-temporal.sh\` (needs python3) or set ${envVar}; ` +
    `falling back to the SDK's download, which needs internet`
  );
}

export function resolveTemporalBinary(
  kind: TemporalBinaryKind,
  options: ResolveOptions = {},
): ResolvedBinary {
  const env = options.env ?? process.env;
  const { envVar, fileName } = SPECS[kind];
  const explicit = env[envVar];
  if (explicit) {
    // An explicit setting that points nowhere is a configuration error, not a reason to download.
    if (!isExecutable(explicit))
      throw new TemporalBinaryNotFound(`${envVar}=${explicit} is not an executable file`);
    return { source: 'env', path: explicit };
  }
  const inVenv = path.join(options.venvDir ?? DEFAULT_VENV_DIR, 'bin', fileName);
  if (isExecutable(inVenv)) return { source: 'venv', path: inVenv };
  const onPath = findOnPath(fileName, env.PATH);
  if (onPath) return { source: 'path', path: onPath };
  return { source: 'download', reason: missingBinaryMessage(kind) };
}

/** The `executable` option of `@temporalio/testing`'s ephemeral servers, for the resolved binary. */
export function ephemeralExecutable(
  kind: TemporalBinaryKind,
  options: ResolveOptions & { warn?: (message: string) => void } = {},
): EphemeralServerExecutable {
  const resolved = resolveTemporalBinary(kind, options);
  if (resolved.source === 'download') {
    (options.warn ?? ((m: string) => process.stderr.write(`${m}\n`)))(resolved.reason);
    return { type: 'cached-download' };
  }
  return { type: 'existing-path', path: resolved.path };
}
