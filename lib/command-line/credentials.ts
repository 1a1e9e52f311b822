/**
 * Credentials as the OpenStack client takes them: flags (`--os-username` ...) over the environment
 * (`OS_USERNAME`, `OS_PASSWORD`, `OS_PROJECT_NAME`, `OS_USER_DOMAIN_NAME`, `OS_PROJECT_DOMAIN_NAME`, or
 * `OS_TOKEN` / `--os-token`), and `OS_AUTH_URL` / `--os-auth-url` for where Keystone is. With none given,
 * the bootstrap's openrc file in the data directory is used, and the client says so on stderr. A password is
 * exchanged for a token at Keystone before any workflow starts (see keystone.ts); workflows get the token.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { PasswordCredentials } from '../../workflows/types';
import { EXIT, UserError } from './usage';

export interface CredentialFlags {
  osUsername?: string;
  osPassword?: string;
  osProjectName?: string;
  osUserDomainName?: string;
  osProjectDomainName?: string;
  osToken?: string;
  osAuthUrl?: string;
}

/** What the command line and environment give: a token to pass on, or a password to exchange at Keystone. */
/** A token given as it is (its Keystone, when known, for operation grants), or a password to exchange. */
export type ClientAuth =
  { token: string; authUrl?: string } | { password: PasswordCredentials; authUrl: string };

const ENV_OF: Record<keyof CredentialFlags, string> = {
  osUsername: 'OS_USERNAME',
  osPassword: 'OS_PASSWORD',
  osProjectName: 'OS_PROJECT_NAME',
  osUserDomainName: 'OS_USER_DOMAIN_NAME',
  osProjectDomainName: 'OS_PROJECT_DOMAIN_NAME',
  osToken: 'OS_TOKEN',
  osAuthUrl: 'OS_AUTH_URL',
};

/** The credential variables proper: OS_AUTH_URL alone (e.g. exported by a profile) does not replace them. */
const CREDENTIAL_KEYS = [
  'osUsername',
  'osPassword',
  'osProjectName',
  'osUserDomainName',
  'osProjectDomainName',
  'osToken',
] as const;

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

function optionName(key: keyof CredentialFlags): string {
  return `${ENV_OF[key]} (--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)})`;
}

function fromValues(
  get: (key: keyof CredentialFlags) => string | undefined,
  source: string,
  authUrlOf: () => string | undefined,
): ClientAuth {
  const token = get('osToken');
  if (token) {
    const authUrl = authUrlOf();
    return authUrl ? { token, authUrl } : { token };
  }
  const missing = (['osUsername', 'osPassword', 'osProjectName'] as const).filter((k) => !get(k));
  if (missing.length > 0) {
    const names = missing.map(optionName);
    throw new UserError(
      `Missing credentials from ${source}: set ${names.join(', ')}, or --os-token`,
      EXIT.USAGE,
    );
  }
  const authUrl = authUrlOf();
  if (!authUrl) {
    throw new UserError(
      `Missing ${optionName('osAuthUrl')} for password authentication from ${source} ` +
        `(source an openrc file), or --os-token`,
      EXIT.USAGE,
    );
  }
  return {
    authUrl,
    password: {
      username: get('osUsername') as string,
      password: get('osPassword') as string,
      projectName: get('osProjectName') as string,
      userDomainName: get('osUserDomainName') || 'Default',
      projectDomainName: get('osProjectDomainName') || 'Default',
    },
  };
}

/** OS_AUTH_URL of the bootstrap's openrc files: the Keystone of the cloud whose data directory this is. */
function authUrlOfDataDir(dataDir: string): string | undefined {
  for (const user of ['demo', 'admin'] as const) {
    const file = openrcFile(dataDir, user);
    if (existsSync(file)) {
      const url = parseOpenrc(readFileSync(file, 'utf8')).OS_AUTH_URL;
      if (url) return url;
    }
  }
  return undefined;
}

export function resolveAuth(flags: CredentialFlags, options: ResolveOptions): ClientAuth {
  const env = options.env ?? process.env;
  const given = (key: keyof CredentialFlags) => flags[key] || env[ENV_OF[key]] || undefined;
  const anyGiven = CREDENTIAL_KEYS.some((k) => given(k) !== undefined);
  if (anyGiven) {
    // Without OS_AUTH_URL, the data directory's cloud is the one meant (as its openrc files say).
    const authUrl = () => given('osAuthUrl') ?? authUrlOfDataDir(options.dataDir);
    return fromValues(given, 'the command line and OS_* environment', authUrl);
  }

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
  return fromValues(
    (key) => values[ENV_OF[key]] || undefined,
    file,
    // The file's own Keystone: an OS_AUTH_URL left in the environment must not get this cloud's password.
    () => flags.osAuthUrl || values.OS_AUTH_URL,
  );
}
