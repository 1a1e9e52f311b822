/**
 * What every command-line program needs before it talks to Temporal: exit codes, the user error, the data
 * directory. Kept free of Temporal's modules, so that `--help` or a usage error answers without loading
 * them (they take most of a second to load).
 */
import path from 'node:path';

export const EXIT = {
  OK: 0,
  /** The operation failed: the server went to ERROR, the API refused the request, the audit found leaks. */
  FAILED: 1,
  /** Bad command line or configuration (unknown flag, missing credentials, no encryption key). */
  USAGE: 2,
  /** Temporal is unreachable, or no worker answered in time. */
  UNAVAILABLE: 3,
} as const;

export class UserError extends Error {
  override readonly name = 'UserError';
  constructor(
    message: string,
    readonly exitCode: number = EXIT.FAILED,
  ) {
    super(message);
  }
}

export function dataDirFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.BOOTFLOW_DATA ?? 'data');
}
