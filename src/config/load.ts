// Reads Usher's configuration file: YAML -> shape check (schema.ts) ->
// defaults, durations, secrets and rules across keys -> UsherConfig.
// Every problem found is reported at once, one per line, so an operator fixes
// the file in one go rather than one restart per typo.
import { readFileSync } from 'node:fs';
import { getSystemErrorMessage } from 'node:util';
import { CORE_SCHEMA, load, YAMLException } from 'js-yaml';
import { parseDuration } from './duration.ts';
import { checkShape, formatPath, type RawConfig } from './schema.ts';
import type { MailConfig, UsherConfig } from './types.ts';

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
  /** Where passwordEnv is looked up (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Reads passwordFile (default: the file system, UTF-8). */
  readFile?: (path: string) => string;
  /** The file name that messages start with. */
  source?: string;
}

/** Loads and checks the configuration file at `path`; throws ConfigError. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): UsherConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${osError(error)}`]);
  }
  return parseConfig(text, { env, source: path });
}

/** Checks configuration YAML (an empty text means all defaults); throws ConfigError. */
export function parseConfig(yamlText: string, opts: ParseOptions = {}): UsherConfig {
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
  const io = { env: opts.env ?? process.env, readFile: opts.readFile ?? ((p: string) => readFileSync(p, 'utf8')) };
  const config = convert(doc as RawConfig, io, problems);
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
  workers: 4,
  resyncPeriod: 'PT10M',
} as const;

interface Io {
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

type RawMail = NonNullable<NonNullable<RawConfig['usher']>['mail']>;

function convert(raw: RawConfig, io: Io, problems: string[]): UsherConfig {
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
    accept: { port: usher.accept?.port ?? DEFAULTS.acceptPort },
    controller: {
      workers: usher.controller?.workers ?? DEFAULTS.workers,
      resyncPeriodMs: duration('usher.controller.resyncPeriod', usher.controller?.resyncPeriod ?? DEFAULTS.resyncPeriod, problems),
    },
  };
  if (usher.mail !== undefined) config.mail = mail(usher.mail, io, problems);
  return config;
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
  const at = 'usher.mail.auth';
  const { passwordFile, passwordEnv } = auth;
  if (passwordFile !== undefined && passwordEnv !== undefined) {
    problems.push(`${at}: has both passwordFile and passwordEnv; keep only one`);
    return undefined;
  }
  if (passwordFile !== undefined) {
    let content: string;
    try {
      content = io.readFile(passwordFile);
    } catch (error) {
      problems.push(`${at}.passwordFile: cannot read ${passwordFile}: ${osError(error)}`);
      return undefined;
    }
    return nonEmptyPassword(`${at}.passwordFile`, `the file ${passwordFile}`, content, problems);
  }
  if (passwordEnv !== undefined) {
    const value = io.env[passwordEnv];
    if (value === undefined) {
      problems.push(`${at}.passwordEnv: the environment variable ${passwordEnv} is not set`);
      return undefined;
    }
    return nonEmptyPassword(`${at}.passwordEnv`, `the environment variable ${passwordEnv}`, value, problems);
  }
  problems.push(`${at}: needs passwordFile or passwordEnv (where the SMTP password is)`);
  return undefined;
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
