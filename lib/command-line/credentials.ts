/**
 * Credentials as the OpenStack client takes them: flags (`--os-username` ...) over the environment
 * (`OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME`, `OS_USER_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_NAME`, or
 * `OS_TOKEN` / `--os-token`). With none given, the bootstrap's openrc file in the data directory is used,
 * and the client says so on stderr. Authentication itself happens in the workflow, on the controller.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { BootAuth } from '../../workflows/types';
import { EXIT, UserError } from './usage';

export interface CredentialFlags {
  osUsername?: string;
  osPassword?: string;
  osProjectName?: string;
  osUserDomainName?: string;
  osProjectDomainName?: string;
  osToken?: string;
}

const ENV_OF: Record<keyof CredentialFlags, string> = {
  osUsername: 'OS_USERNAME',
  osPassword: 'OS_PASSWORD',
  osProjectName: 'OS_PROJECT_NAME',
  osUserDomainName: 'OS_USER_DOMAIN_NAME',
  osProjectDomainName: 'OS_PROJECT_DOMAIN_NAME',
  osToken: 'OS_TOKEN',
};

/** Reads `export OS_X='value'` (or "value", or bare value) lines of a DevStack-style openrc file. */
export function parseOpenrc(text: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^\s*(?:export\s+)?(OS_[A-Z_]+)=(?:'([^']*)'|"([^"]*)"|(\S*))\s*$/.exec(line);
    if (match) values[match[1]!] = match[2] ?? match[3] ?? match[4] ?? '';
  }
  return values;
}

export function openrcFile(dataDir: string, user: 'admin' | 'demo'): string {
  return path.join(dataDir, `${user}-openrc.sh`);
}

export interface ResolveOptions {
  env?: NodeJS.ProcessEnv;
  dataDir: string;
  /** Which bootstrap user to fall back to: admin for admin-only commands, demo otherwise. */
  fallbackUser: 'admin' | 'demo';
  /** Where the fall-back note goes (stderr by default). */
  note?: (line: string) => void;
}

function fromValues(get: (key: keyof CredentialFlags) => string | undefined, source: string): BootAuth {
  const token = get('osToken');
  if (token) return { token };
  const missing = (['osUsername', 'osPassword', 'osProjectName'] as const).filter((k) => !get(k));
  if (missing.length > 0) {
    const names = missing.map((k) => `${ENV_OF[k]} (--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)})`);
    throw new UserError(
      `Missing credentials from ${source}: set ${names.join(', ')}, or --os-token`,
      EXIT.USAGE,
    );
  }
  return {
    credentials: {
      username: get('osUsername') as string,
      password: get('osPassword') as string,
      projectName: get('osProjectName') as string,
      userDomainName: get('osUserDomainName') || 'Default',
      projectDomainName: get('osProjectDomainName') || 'Default',
    },
  };
}

export function resolveAuth(flags: CredentialFlags, options: ResolveOptions): BootAuth {
  const env = options.env ?? process.env;
  const given = (key: keyof CredentialFlags) => flags[key] || env[ENV_OF[key]] || undefined;
  const anyGiven = (Object.keys(ENV_OF) as Array<keyof CredentialFlags>).some((k) => given(k) !== undefined);
  if (anyGiven) return fromValues(given, 'the command line and OS_* environment');

  const file = openrcFile(options.dataDir, options.fallbackUser);
  if (!existsSync(file)) {
    throw new UserError(
      `No credentials: set OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (or source an openrc file), ` +
        `pass --os-username/--os-password/--os-project-name or --os-token; ` +
        `${file} does not exist (run \`npm start\` to bootstrap the embedded cloud)`,
      EXIT.USAGE,
    );
  }
  const values = parseOpenrc(readFileSync(file, 'utf8'));
  (options.note ?? ((line) => process.stderr.write(`${line}\n`)))(
    `Using the ${options.fallbackUser} credentials of ${file} (no OS_* variables or --os-* flags given)`,
  );
  return fromValues((key) => values[ENV_OF[key]] || undefined, file);
}
