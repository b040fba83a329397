// Reads Usher's configuration file: YAML -> shape check (schema.ts) ->
// defaults, durations, secrets and rules across keys -> UsherConfig.
// Every problem found is reported at once, one per line, so an operator fixes
// the file in one go rather than one restart per typo.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { getSystemErrorMessage } from 'node:util';
import { CORE_SCHEMA, load, YAMLException } from 'js-yaml';
import { parseDuration } from './duration.ts';
import { checkShape, formatPath, type RawConfig } from './schema.ts';
import type { AcceptConfig, IdentityConfig, MailConfig, RbacConfig, UsherConfig } from './types.ts';

/** The configuration cannot be used; the message lists every problem, one per line, each naming the file and key. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  /** The problems without the file name, e.g. `usher.mail.prot: unknown key (did you mean "port"?)`. */
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    super(problems.map((p) => `${source}: ${p}`).join('\n'));
    this.problems = problems;
  }
}

export interface ParseOptions {
  /** Where passwordEnv / clientSecretEnv are looked up: the process's environment, given by main. */
  env: NodeJS.ProcessEnv;
  /** Reads passwordFile, clientSecretFile, csrfKeyFile (default: the file system, UTF-8). */
  readFile?: (path: string) => string;
  /** The file name that messages start with. */
  source?: string;
  /**
   * Which part of Usher reads the file. The acceptance page alone never talks
   * to the identity provider, so it neither needs nor reads the secret of
   * Usher's client there (its Deployment has no such Secret mounted).
   */
  component?: 'accept' | 'controller' | 'all';
}

/** Loads and checks the configuration file at `path` (passwordEnv / clientSecretEnv looked up in `env`); throws ConfigError. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv, component?: ParseOptions['component']): UsherConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${osError(error)}`]);
  }
  return parseConfig(text, { env, source: path, ...(component ? { component } : {}) });
}

/** Checks configuration YAML (an empty text means all defaults); throws ConfigError. */
export function parseConfig(yamlText: string, opts: ParseOptions): UsherConfig {
  const source = opts.source ?? 'configuration';
  let doc: unknown;
  try {
    // CORE_SCHEMA: no YAML timestamps, so `expireAfter: 2025-01-01` is a wrong string, not a Date.
    doc = load(yamlText, { schema: CORE_SCHEMA });
  } catch (error) {
    if (!(error instanceof YAMLException)) throw error;
    throw new ConfigError(source, [`line ${error.mark.line + 1}, column ${error.mark.column + 1}: YAML syntax error: ${error.reason}`]);
  }
  doc = emptyAsDefaults(doc);

  const problems: string[] = [];
  for (const problem of checkShape(doc)) {
    problems.push(`${formatPath(problem.path) || 'the file'}: ${problem.message}`);
    // Drop what is wrong so that the other keys can still be checked (and
    // their problems reported now) without tripping over it.
    doc = prune(doc, problem.path);
  }
  const io = { env: opts.env, readFile: opts.readFile ?? ((p: string) => readFileSync(p, 'utf8')), component: opts.component ?? 'all' };
  const config = convert(doc as Pruned<RawConfig>, io, problems);
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}

// What an absent key means (the brief and examples/usher-config.yaml say the same).
const DEFAULTS = {
  baseUrl: 'http://localhost:8080',
  expireAfter: 'P7D',
  maxExpireAfter: 'P90D',
  linkDisclosure: 'Status',
  requireGroupOrRole: true,
  namespaceLabel: 'usher.dev/tenant',
  mailPort: 587,
  implicitTlsPort: 465,
  allowSelfSigned: false,
  maxConnections: 5,
  rateLimitPerSecond: 0,
  acceptPort: 8080,
  namespace: 'usher-system',
  perClientPerMinute: 60,
  perTokenPerMinute: 10,
  workers: 4,
  resyncPeriod: 'PT10M',
  onInvitationDelete: 'RemoveMembership',
  deleteUserWithoutMemberships: true,
  // usher.rbac: off; usernames from the identity provider's account with usher.identity, else the address; no prefixes.
  rbacEnabled: false,
  usernameFromWithIdentity: 'IdentityUsername',
  usernameFromWithoutIdentity: 'Email',
  rbacPrefix: '',
} as const;

interface Io {
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
  component: NonNullable<ParseOptions['component']>;
}

/**
 * The document once its problems are pruned: what is left fits the schema,
 * except that a required key may be missing (its problem is already reported).
 */
type Pruned<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: Pruned<T[K]> } : T;

type RawMail = NonNullable<NonNullable<Pruned<RawConfig>['usher']>['mail']>;

function convert(raw: Pruned<RawConfig>, io: Io, problems: string[]): UsherConfig {
  const usher = raw.usher ?? {};
  const invitations = usher.security?.invitations ?? {};
  const at = 'usher.security.invitations';
  const expireAfter = invitations.expireAfter ?? DEFAULTS.expireAfter;
  const maxExpireAfter = invitations.maxExpireAfter ?? DEFAULTS.maxExpireAfter;
  const expireAfterMs = duration(`${at}.expireAfter`, expireAfter, problems);
  const maxExpireAfterMs = duration(`${at}.maxExpireAfter`, maxExpireAfter, problems);
  if (expireAfterMs > maxExpireAfterMs) {
    const which = invitations.maxExpireAfter === undefined ? ', the default' : '';
    problems.push(`${at}.expireAfter: ${expireAfter} is longer than ${at}.maxExpireAfter (${maxExpireAfter}${which})`);
  }

  const config: UsherConfig = {
    baseUrl: baseUrl(usher.baseUrl ?? DEFAULTS.baseUrl, problems),
    namespace: usher.namespace ?? DEFAULTS.namespace,
    invitations: {
      expireAfterMs,
      expireAfter,
      maxExpireAfterMs,
      maxExpireAfter,
      linkDisclosure: invitations.linkDisclosure ?? DEFAULTS.linkDisclosure,
      requireGroupOrRole: invitations.requireGroupOrRole ?? DEFAULTS.requireGroupOrRole,
    },
    tenancy: {
      namespaceLabel: usher.tenancy?.namespaceLabel ?? DEFAULTS.namespaceLabel,
      instanceNamespaces: [...(usher.tenancy?.instanceNamespaces ?? [])],
    },
    accept: accept(usher.accept ?? {}, usher.namespace ?? DEFAULTS.namespace, io, problems),
    access: {
      onInvitationDelete: usher.access?.onInvitationDelete ?? DEFAULTS.onInvitationDelete,
      deleteUserWithoutMemberships: usher.access?.deleteUserWithoutMemberships ?? DEFAULTS.deleteUserWithoutMemberships,
    },
    controller: {
      workers: usher.controller?.workers ?? DEFAULTS.workers,
      resyncPeriodMs: duration('usher.controller.resyncPeriod', usher.controller?.resyncPeriod ?? DEFAULTS.resyncPeriod, problems),
    },
  };
  if (usher.mail !== undefined) config.mail = mail(usher.mail, io, problems);
  const identityConfig = identity(usher.identity ?? {}, io, problems);
  if (identityConfig !== undefined) {
    config.identity = identityConfig;
    // The page's rule (the controller's file in the chart carries no OIDC client).
    if (io.component !== 'controller' && !config.accept.oidc && usher.accept?.oidc === undefined) {
      problems.push(
        'usher.accept.oidc: is required when usher.identity.provider is keycloak: people who already have an account there accept by signing in to it ' +
          `(issuer ${identityConfig.keycloak.url}/realms/${identityConfig.keycloak.realm})`,
      );
    }
    // Where the accepted person signs in, unless the file says: the realm's account console.
    config.accept.loginUrl ??= `${identityConfig.keycloak.url}/realms/${encodeURIComponent(identityConfig.keycloak.realm)}/account`;
  }
  const rbacConfig = rbac(usher.rbac ?? {}, usher.identity?.provider ?? 'none', problems);
  if (rbacConfig !== undefined) config.rbac = rbacConfig;
  return config;
}

type RawRbac = NonNullable<NonNullable<Pruned<RawConfig>['usher']>['rbac']>;

/**
 * usher.rbac, when enabled (absent otherwise: its other keys are then only
 * checked for their shape, so that switching it off needs no other edit).
 * The names in the maps were checked by the schema (keys: the CRD's patterns
 * for role and group names; values: ClusterRole names); what is left are the
 * rules across keys.
 */
function rbac(raw: RawRbac, provider: 'none' | 'keycloak', problems: string[]): RbacConfig | undefined {
  const at = 'usher.rbac';
  if (!(raw.enabled ?? DEFAULTS.rbacEnabled)) return undefined;
  const roleMap = stringMap(raw.roleMap);
  const groupMap = stringMap(raw.groupMap);
  // A map whose entries were all wrong is empty now, but was not as written: its problems say enough.
  const mapProblems = problems.some((p) => p.startsWith(`${at}.roleMap`) || p.startsWith(`${at}.groupMap`));
  if (Object.keys(roleMap).length === 0 && Object.keys(groupMap).length === 0 && !mapProblems) {
    problems.push(`${at}: binds nothing: map a role or a group, or leave ${at}.enabled false (${at}.roleMap and ${at}.groupMap are both empty)`);
  }
  const withIdentity = provider === 'keycloak';
  const from = raw.username?.from ?? (withIdentity ? DEFAULTS.usernameFromWithIdentity : DEFAULTS.usernameFromWithoutIdentity);
  if (from === 'IdentityUsername' && !withIdentity) {
    problems.push(
      `${at}.username.from: IdentityUsername needs usher.identity.provider: keycloak (the username is that of the person's account at the identity provider, ` +
        'which exists only with one); use Email, or set up usher.identity',
    );
  }
  return {
    roleMap,
    groupMap,
    username: { from, prefix: raw.username?.prefix ?? DEFAULTS.rbacPrefix },
    groups: { prefix: raw.groups?.prefix ?? DEFAULTS.rbacPrefix },
  };
}

/** A copy of a mapping of names, without what was pruned. */
function stringMap(raw: Partial<Record<string, string>> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(raw ?? {}).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

type RawIdentity = NonNullable<NonNullable<Pruned<RawConfig>['usher']>['identity']>;

function identity(raw: RawIdentity, io: Io, problems: string[]): IdentityConfig | undefined {
  const at = 'usher.identity';
  const provider = raw.provider ?? 'none';
  if (provider === 'none') {
    if (raw.keycloak !== undefined) problems.push(`${at}.keycloak: is set but ${at}.provider is none; set ${at}.provider: keycloak to use it`);
    return undefined;
  }
  if (raw.keycloak === undefined) {
    problems.push(`${at}.keycloak: is required when ${at}.provider is keycloak (url, realm, clientId and clientSecretFile or clientSecretEnv)`);
    return undefined;
  }
  const { url = '', realm = '', clientId = '', clientSecretFile, clientSecretEnv, caFile } = raw.keycloak;
  const source = { at: `${at}.keycloak`, fileKey: 'clientSecretFile', envKey: 'clientSecretEnv', what: "the secret of Usher's Keycloak client" };
  // The acceptance page never calls the provider: its pod has no such secret to read ('' stands for "not needed here").
  const clientSecret = io.component === 'accept' ? '' : secret(source, clientSecretFile, clientSecretEnv, io, problems);
  const parsed = URL.parse(url);
  if (url !== '' && (parsed === null || !/^https?:$/.test(parsed.protocol) || parsed.search !== '' || parsed.hash !== '')) {
    problems.push(`${at}.keycloak.url: ${JSON.stringify(url)} is not an http(s) URL such as https://login.example.com`);
  } else if (parsed && /\/realms(\/|$)/.test(parsed.pathname)) {
    problems.push(`${at}.keycloak.url: ${JSON.stringify(url)} includes /realms; give Keycloak's base URL and the realm in ${at}.keycloak.realm`);
  }
  if (caFile !== undefined) {
    try {
      io.readFile(caFile);
    } catch (error) {
      problems.push(`${at}.keycloak.caFile: cannot read ${caFile}: ${osError(error)}`);
    }
  }
  if (clientSecret === undefined) return undefined;
  return {
    provider: 'keycloak',
    keycloak: { url: url.replace(/\/+$/, ''), realm, clientId, clientSecret, ...(caFile !== undefined ? { caFile } : {}) },
    onUserDelete: raw.onUserDelete ?? 'Disable',
  };
}

function mail(raw: RawMail, io: Io, problems: string[]): MailConfig {
  // Port 465 means TLS from the first byte, and TLS from the first byte means
  // port 465, unless the file says otherwise.
  const tls = raw.tls ?? (raw.port === DEFAULTS.implicitTlsPort ? 'implicit' : 'starttls');
  const config: MailConfig = {
    // host and from are required by the schema: when missing, a problem is already reported.
    host: raw.host ?? '',
    port: raw.port ?? (tls === 'implicit' ? DEFAULTS.implicitTlsPort : DEFAULTS.mailPort),
    tls,
    allowSelfSigned: raw.allowSelfSigned ?? DEFAULTS.allowSelfSigned,
    from: raw.from ?? '',
    pool: { maxConnections: raw.pool?.maxConnections ?? DEFAULTS.maxConnections },
    rateLimitPerSecond: raw.rateLimitPerSecond ?? DEFAULTS.rateLimitPerSecond,
  };
  if (raw.replyTo !== undefined) config.replyTo = raw.replyTo;
  if (raw.templatesDir !== undefined) config.templatesDir = raw.templatesDir;
  if (raw.auth !== undefined) {
    const password = smtpPassword(raw.auth, io, problems);
    if (password !== undefined) config.auth = { user: raw.auth.user ?? '', password };
  }
  return config;
}

/** The SMTP password from exactly one of passwordFile / passwordEnv. Messages never include it. */
function smtpPassword(auth: NonNullable<RawMail['auth']>, io: Io, problems: string[]): string | undefined {
  const source = { at: 'usher.mail.auth', fileKey: 'passwordFile', envKey: 'passwordEnv', what: 'the SMTP password' };
  return secret(source, auth.passwordFile, auth.passwordEnv, io, problems);
}

interface SecretSource {
  /** The key holding fileKey and envKey, e.g. usher.mail.auth. */
  at: string;
  fileKey: string;
  envKey: string;
  /** What the secret is, for "needs passwordFile or passwordEnv (where <what> is)". */
  what: string;
}

/** A secret from exactly one of a file or an environment variable. Messages never include it. */
function secret(source: SecretSource, file: string | undefined, env: string | undefined, io: Io, problems: string[]): string | undefined {
  const { at, fileKey, envKey } = source;
  if (file !== undefined && env !== undefined) {
    problems.push(`${at}: has both ${fileKey} and ${envKey}; keep only one`);
    return undefined;
  }
  if (file !== undefined) return secretFile(`${at}.${fileKey}`, file, io, problems);
  if (env !== undefined) {
    const value = io.env[env];
    if (value === undefined) {
      problems.push(`${at}.${envKey}: the environment variable ${env} is not set`);
      return undefined;
    }
    return nonEmptyPassword(`${at}.${envKey}`, `the environment variable ${env}`, value, problems);
  }
  problems.push(`${at}: needs ${fileKey} or ${envKey} (where ${source.what} is)`);
  return undefined;
}

function secretFile(key: string, path: string, io: Io, problems: string[]): string | undefined {
  let content: string;
  try {
    content = io.readFile(path);
  } catch (error) {
    problems.push(`${key}: cannot read ${path}: ${osError(error)}`);
    return undefined;
  }
  return nonEmptyPassword(key, `the file ${path}`, content, problems);
}

type RawAccept = NonNullable<NonNullable<Pruned<RawConfig>['usher']>['accept']>;

/** Shortest CSRF key accepted: 32 bytes, the HMAC-SHA-256 block of security it feeds. */
const MIN_CSRF_KEY_BYTES = 32;

function accept(raw: RawAccept, namespace: string, io: Io, problems: string[]): AcceptConfig {
  const at = 'usher.accept';
  const config: AcceptConfig = {
    port: raw.port ?? DEFAULTS.acceptPort,
    credentialsNamespace: raw.credentialsNamespace ?? namespace,
    rateLimit: {
      perClientPerMinute: raw.rateLimit?.perClientPerMinute ?? DEFAULTS.perClientPerMinute,
      perTokenPerMinute: raw.rateLimit?.perTokenPerMinute ?? DEFAULTS.perTokenPerMinute,
    },
    trustProxy:
      typeof raw.trustProxy === 'number'
        ? raw.trustProxy
        : (raw.trustProxy ?? []).filter((entry, i) => {
            if (isAddressOrRange(entry)) return true;
            problems.push(`${at}.trustProxy[${i}]: ${JSON.stringify(entry)} is not an IP address or CIDR range such as 10.0.0.0/8`);
            return false;
          }),
  };
  if (raw.loginUrl !== undefined) {
    const url = URL.parse(raw.loginUrl);
    if (url === null || !/^https?:$/.test(url.protocol))
      problems.push(`${at}.loginUrl: ${JSON.stringify(raw.loginUrl)} is not an http(s) URL such as https://console.example.com`);
    config.loginUrl = raw.loginUrl;
  }
  if (raw.oidc !== undefined) {
    const { issuer = '', clientId = '', clientSecretFile, clientSecretEnv } = raw.oidc;
    const source = { at: `${at}.oidc`, fileKey: 'clientSecretFile', envKey: 'clientSecretEnv', what: 'the OIDC client secret' };
    const clientSecret = secret(source, clientSecretFile, clientSecretEnv, io, problems);
    if (issuer !== '' && !isIssuer(issuer)) {
      problems.push(`${at}.oidc.issuer: ${JSON.stringify(issuer)} is not an https URL without query or fragment (http only for localhost)`);
    }
    // issuer and clientId are required by the schema: when missing, a problem is already reported.
    if (clientSecret !== undefined) config.oidc = { issuer: issuer.replace(/\/$/, ''), clientId, clientSecret };
  }
  if (raw.csrfKeyFile !== undefined) {
    const key = secretFile(`${at}.csrfKeyFile`, raw.csrfKeyFile, io, problems);
    if (key !== undefined && Buffer.byteLength(key, 'utf8') < MIN_CSRF_KEY_BYTES) {
      problems.push(`${at}.csrfKeyFile: the file ${raw.csrfKeyFile} holds fewer than ${MIN_CSRF_KEY_BYTES} bytes; use e.g. \`openssl rand -base64 48\``);
    } else if (key !== undefined) {
      config.csrfKey = key;
    }
  }
  return config;
}

/** https, or http on a loopback host (a provider run by tests or on a laptop); no query or fragment (RFC 8414). */
function isIssuer(text: string): boolean {
  const url = URL.parse(text);
  if (url === null || url.search !== '' || url.hash !== '') return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

function isAddressOrRange(text: string): boolean {
  const [address = '', prefix, ...rest] = text.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

function nonEmptyPassword(key: string, origin: string, value: string, problems: string[]): string | undefined {
  // Secrets written with `echo` or `kubectl create secret --from-file` end with a newline that is not part of the password.
  const password = value.replace(/\r?\n$/, '');
  if (password === '') {
    problems.push(`${key}: ${origin} is empty`);
    return undefined;
  }
  return password;
}

function duration(key: string, text: string, problems: string[]): number {
  try {
    return parseDuration(text);
  } catch (error) {
    problems.push(`${key}: ${error instanceof Error ? error.message : String(error)}`);
    return NaN;
  }
}

function baseUrl(text: string, problems: string[]): string {
  const url = URL.parse(text);
  if (url === null || !/^https?:\/\//i.test(text)) {
    problems.push(`usher.baseUrl: ${JSON.stringify(text)} is not an http(s) URL such as https://platform.example.com`);
  } else if (url.search !== '' || url.hash !== '') {
    // Links are built by appending a path to it.
    problems.push(`usher.baseUrl: ${JSON.stringify(text)} must not have a query (?) or fragment (#)`);
  }
  return text.endsWith('/') ? text.slice(0, -1) : text;
}

/** An empty file, or an `usher:` key with everything under it commented out, means all defaults. */
function emptyAsDefaults(doc: unknown): unknown {
  if (doc === undefined || doc === null) return {};
  if (isRecord(doc) && doc.usher === null) return { ...doc, usher: {} };
  return doc;
}

/** `doc` without the value at `path` (the whole list when the path goes into one). */
function prune(doc: unknown, path: readonly (string | number)[]): unknown {
  const index = path.findIndex((segment) => typeof segment === 'number');
  const target = index === -1 ? path : path.slice(0, index);
  const key = target.at(-1);
  if (key === undefined) return {};
  let node = doc;
  for (const segment of target.slice(0, -1)) {
    if (!isRecord(node)) return doc;
    node = node[segment];
  }
  if (isRecord(node)) Reflect.deleteProperty(node, key);
  return doc;
}

function isRecord(value: unknown): value is Record<string | number, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** "no such file or directory (ENOENT)" rather than Node's longer message that repeats the path. */
function osError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code, errno } = error as NodeJS.ErrnoException;
  return code !== undefined && errno !== undefined ? `${getSystemErrorMessage(errno)} (${code})` : error.message;
}
