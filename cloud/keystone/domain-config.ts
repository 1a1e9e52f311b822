/**
 * Keystone's domain configuration API (keystone/resource/core.py DomainConfigManager, config_backends/
 * sql.py): per-domain options of the identity and ldap groups, only those Keystone whitelists (answered) or
 * marks sensitive (ldap password: stored, never answered). Stored only: bootflow has no LDAP identity
 * backend, so a domain's config changes no behaviour. Values are any JSON, answered as given; a sensitive
 * value is sealed with the credential key. Errors as Keystone's: InvalidDomainConfig is 403, a missing
 * group or option DomainConfigNotFound 404.
 */
import type { Clock } from '../clock';
import type { ServiceDb } from '../db';
import { CloudError } from '../errors';
import type { CredentialKey } from './credential-key';
import type { DomainConfigTable, KeystoneDb } from './schema';

/** keystone.ts's DEFAULT_DOMAIN_ID (not imported: keystone.ts imports this module). */
const DEFAULT_DOMAIN_ID = 'default';

/** Keystone's whitelisted_options: each with the default of keystone/conf/identity.py, ldap.py. */
export const DOMAIN_CONFIG_DEFAULTS: Record<string, Record<string, unknown>> = {
  identity: { driver: 'sql', list_limit: null },
  ldap: {
    url: 'ldap://localhost',
    user: null,
    suffix: 'cn=example,cn=com',
    query_scope: 'one',
    page_size: 0,
    alias_dereferencing: 'default',
    debug_level: null,
    chase_referrals: null,
    user_tree_dn: null,
    user_filter: null,
    user_objectclass: 'inetOrgPerson',
    user_id_attribute: 'cn',
    user_name_attribute: 'sn',
    user_mail_attribute: 'mail',
    user_description_attribute: 'description',
    user_pass_attribute: 'userPassword',
    user_enabled_attribute: 'enabled',
    user_enabled_invert: false,
    user_enabled_mask: 0,
    user_enabled_default: 'True',
    user_attribute_ignore: ['default_project_id'],
    user_default_project_id_attribute: null,
    user_enabled_emulation: false,
    user_enabled_emulation_dn: null,
    user_enabled_emulation_use_group_config: false,
    user_additional_attribute_mapping: [],
    group_tree_dn: null,
    group_filter: null,
    group_objectclass: 'groupOfNames',
    group_id_attribute: 'cn',
    group_name_attribute: 'ou',
    group_members_are_ids: false,
    group_member_attribute: 'member',
    group_desc_attribute: 'description',
    group_attribute_ignore: [],
    group_additional_attribute_mapping: [],
    tls_cacertfile: null,
    tls_cacertdir: null,
    use_tls: false,
    tls_req_cert: 'demand',
    use_pool: true,
    pool_size: 10,
    pool_retry_max: 3,
    pool_retry_delay: 0.1,
    pool_connection_timeout: -1,
    pool_connection_lifetime: 600,
    use_auth_pool: true,
    auth_pool_size: 100,
    auth_pool_connection_lifetime: 60,
  },
};
/** Keystone's sensitive_options. */
const SENSITIVE: Record<string, string[]> = { identity: [], ldap: ['password'] };

export type DomainConfig = Record<string, Record<string, unknown>>;

const invalid = (reason: string) =>
  new CloudError('Forbidden', `Invalid domain specific configuration: ${reason}.`);
const notFound = (domainId: string, what: string) =>
  new CloudError('NotFound', `Could not find ${what} in domain configuration for domain ${domainId}.`);
const whatOf = (group?: string, option?: string) =>
  option ? `option ${option} in group ${group}` : group ? `group ${group}` : 'any options';

const isWhitelisted = (group: string, option: string) =>
  Object.hasOwn(DOMAIN_CONFIG_DEFAULTS, group) && Object.hasOwn(DOMAIN_CONFIG_DEFAULTS[group] ?? {}, option);
const isSensitive = (group: string, option: string) => (SENSITIVE[group] ?? []).includes(option);

/** Keystone's _assert_valid_group_and_option. */
function assertValidGroupAndOption(group?: string, option?: string): void {
  if (group === undefined) return;
  if (!Object.hasOwn(DOMAIN_CONFIG_DEFAULTS, group) && !Object.hasOwn(SENSITIVE, group))
    throw invalid(`Group ${group} is not supported for domain specific configurations`);
  if (option !== undefined && !isWhitelisted(group, option) && !isSensitive(group, option))
    throw invalid(`Option ${option} in group ${group} is not supported for domain specific configurations`);
}

/** Keystone's _assert_valid_config: something given, each group an object of supported options. */
function assertValidConfig(config: unknown): asserts config is DomainConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config) || !Object.keys(config).length)
    throw invalid('No options specified');
  for (const [group, options] of Object.entries(config)) {
    if (
      options === null ||
      typeof options !== 'object' ||
      Array.isArray(options) ||
      !Object.keys(options).length
    )
      throw invalid(`The value of group ${group} specified in the config should be a dictionary of options`);
    for (const option of Object.keys(options)) assertValidGroupAndOption(group, option);
  }
}

interface OptionRow {
  group: string;
  option: string;
  value: unknown;
  sensitive: boolean;
}

/** Keystone's _list_to_config: one option alone when one was asked for, else groups of options. */
function listToConfig(list: OptionRow[], option?: string): DomainConfig | Record<string, unknown> {
  if (option !== undefined) return Object.fromEntries(list.map((r) => [r.option, r.value]));
  const config: DomainConfig = {};
  for (const r of list) (config[r.group] ??= {})[r.option] = r.value;
  return config;
}

export class DomainConfigs {
  constructor(
    private readonly store: ServiceDb<KeystoneDb>,
    private readonly clock: Clock,
    private readonly key: CredentialKey,
  ) {}

  private async options(
    domainId: string,
    filter: { group?: string; option?: string; sensitive?: boolean } = {},
  ): Promise<OptionRow[]> {
    let query = this.store.db.selectFrom('domain_config').selectAll().where('domain_id', '=', domainId);
    if (filter.group !== undefined) query = query.where('group_name', '=', filter.group);
    if (filter.option !== undefined) query = query.where('option_name', '=', filter.option);
    if (filter.sensitive !== undefined) query = query.where('sensitive', '=', filter.sensitive ? 1 : 0);
    const rows = await query.orderBy('group_name').orderBy('option_name').execute();
    return rows.map((r) => ({
      group: r.group_name,
      option: r.option_name,
      sensitive: r.sensitive === 1,
      value: JSON.parse(r.sensitive === 1 ? this.key.decrypt(r.value, this.key.hash) : r.value) as unknown,
    }));
  }

  private rowsOf(domainId: string, config: DomainConfig): DomainConfigTable[] {
    const now = this.clock.now();
    return Object.entries(config).flatMap(([group, options]) =>
      Object.entries(options).map(([option, value]) => {
        const sensitive = isSensitive(group, option);
        const json = JSON.stringify(value);
        return {
          domain_id: domainId,
          group_name: group,
          option_name: option,
          value: sensitive ? this.key.encrypt(json) : json,
          sensitive: sensitive ? 1 : 0,
          created_at: now,
        };
      }),
    );
  }

  /** Whether the domain has any option at all (sensitive ones too): PUT answers 201 when it had none. */
  async exists(domainId: string): Promise<boolean> {
    return (await this.options(domainId)).length > 0;
  }

  /** Keystone's create_config: replaces the domain's whole config; answers its whitelisted options. */
  async create(domainId: string, config: unknown): Promise<DomainConfig> {
    assertValidConfig(config);
    const rows = this.rowsOf(domainId, config);
    await this.store.transaction(async (trx) => {
      await trx.deleteFrom('domain_config').where('domain_id', '=', domainId).execute();
      await trx.insertInto('domain_config').values(rows).execute();
    });
    return listToConfig(await this.options(domainId, { sensitive: false })) as DomainConfig;
  }

  /** Keystone's get_config: the whitelisted options, of a group or one option; 404 when none. */
  async get(domainId: string, group?: string, option?: string): Promise<Record<string, unknown>> {
    assertValidGroupAndOption(group, option);
    const found = await this.options(domainId, {
      ...(group !== undefined ? { group } : {}),
      ...(option !== undefined ? { option } : {}),
      sensitive: false,
    });
    if (!found.length) throw notFound(domainId, whatOf(group, option));
    return listToConfig(found, option);
  }

  /**
   * Keystone's update_config: merges the given options into the config. On a group (an option) the body
   * holds only that group (that option), which must already exist; answers the whole whitelisted config.
   */
  async update(domainId: string, config: unknown, group?: string, option?: string): Promise<DomainConfig> {
    const update: unknown = group !== undefined && option !== undefined ? { [group]: config } : config;
    assertValidConfig(update);
    assertValidGroupAndOption(group, option);
    if (group !== undefined) {
      const keys = Object.keys(update);
      if (
        keys.length !== 1 ||
        (option !== undefined && Object.keys(update[keys[0] ?? ''] ?? {}).length !== 1)
      )
        throw invalid(
          option !== undefined
            ? `Trying to update option ${option} in group ${group}, so that, and only that, option must be specified  in the config`
            : `Trying to update group ${group}, so that, and only that, group must be specified in the config`,
        );
      if (!Object.hasOwn(update, group))
        throw invalid(
          `request to update group ${group}, but config provided contains group ${keys[0]} instead`,
        );
      const groupOptions = update[group] ?? {};
      if (option !== undefined && !Object.hasOwn(groupOptions, option))
        throw invalid(
          `Trying to update option ${option} in group ${group}, but config provided contains option ${Object.keys(groupOptions)[0]} instead`,
        );
      const current = await this.options(domainId, { group, ...(option !== undefined ? { option } : {}) });
      if (!current.length) throw notFound(domainId, whatOf(group, option));
    }
    const rows = this.rowsOf(domainId, update);
    await this.store.transaction(async (trx) => {
      for (const row of rows) {
        await trx
          .deleteFrom('domain_config')
          .where('domain_id', '=', domainId)
          .where('group_name', '=', row.group_name)
          .where('option_name', '=', row.option_name)
          .execute();
        await trx.insertInto('domain_config').values(row).execute();
      }
    });
    return (await this.get(domainId)) as DomainConfig;
  }

  /** Keystone's delete_config: all of it, a group or an option (which must exist, sensitive ones too). */
  async delete(domainId: string, group?: string, option?: string): Promise<void> {
    assertValidGroupAndOption(group, option);
    if (group !== undefined) {
      const current = await this.options(domainId, { group });
      if (!current.length) throw notFound(domainId, whatOf(group));
      if (option !== undefined && !current.some((r) => r.option === option))
        throw notFound(domainId, whatOf(group, option));
    }
    let query = this.store.db.deleteFrom('domain_config').where('domain_id', '=', domainId);
    if (group !== undefined) query = query.where('group_name', '=', group);
    if (option !== undefined) query = query.where('option_name', '=', option);
    await query.execute();
  }

  /**
   * Keystone's get_security_compliance_config: the default domain's password_regex and its description,
   * readable by anyone. Bootflow sets no password rules (security_compliance is off): both null, Keystone's
   * defaults.
   */
  securityCompliance(domainId: string, option?: string): Record<string, unknown> {
    if (domainId !== DEFAULT_DOMAIN_ID)
      throw invalid(
        'Reading security compliance information for any domain other than the default domain is not allowed or supported.',
      );
    const readable = ['password_regex', 'password_regex_description'];
    if (option !== undefined && !readable.includes(option))
      throw invalid(
        'Reading security compliance values other than password_regex and password_regex_description is not allowed.',
      );
    if (option !== undefined) return { [option]: null };
    return { security_compliance: Object.fromEntries(readable.map((o) => [o, null])) };
  }

  /** Keystone's get_config_default: the whitelisted options' defaults, of a group or one option. */
  getDefault(group?: string, option?: string): Record<string, unknown> {
    assertValidGroupAndOption(group, option);
    if (group !== undefined && option !== undefined) {
      if (!isWhitelisted(group, option))
        throw invalid(`Reading the default for option ${option} in group ${group} is not supported`);
      return { [option]: DOMAIN_CONFIG_DEFAULTS[group]?.[option] };
    }
    if (group !== undefined) return { [group]: { ...DOMAIN_CONFIG_DEFAULTS[group] } };
    return structuredClone(DOMAIN_CONFIG_DEFAULTS);
  }
}
