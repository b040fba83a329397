import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig, type ParseOptions } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';

const DAY = 24 * 3600 * 1000;
const example = join(import.meta.dirname, '..', '..', 'examples', 'usher-config.yaml');

/** A readFile stub that only knows the given files. */
function files(contents: Record<string, string>): (path: string) => string {
  return (path) => {
    const content = contents[path];
    if (content === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${path}'`), { code: 'ENOENT', errno: -2 });
    return content;
  };
}

function parse(yaml: string, opts: Partial<ParseOptions> = {}): UsherConfig {
  return parseConfig(yaml, { source: 'usher-config.yaml', env: {}, ...opts });
}

function errorOf(yaml: string, opts: Partial<ParseOptions> = {}): ConfigError {
  try {
    parse(yaml, opts);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError, but the configuration loaded');
}

const mailWith = (lines: string): string => `usher:\n  mail:\n    host: smtp.example.com\n    from: no-reply@example.com\n${lines}`;

describe('parseConfig: the repo example', () => {
  it('loads examples/usher-config.yaml, reading the password file', () => {
    const config = parse(readFileSync(example, 'utf8'), {
      readFile: files({ '/var/run/secrets/usher/smtp-password': 'hunter2\n' }),
    });
    expect(config.baseUrl).toBe('https://platform.example.com');
    expect(config.invitations).toMatchObject({ expireAfter: 'P30D', expireAfterMs: 30 * DAY, maxExpireAfter: 'P90D' });
    expect(config.mail).toEqual({
      host: 'smtp.example.com',
      port: 587,
      tls: 'starttls',
      allowSelfSigned: false,
      from: 'Platform <no-reply@example.com>',
      auth: { user: 'no-reply@example.com', password: 'hunter2' },
      pool: { maxConnections: 5 },
      rateLimitPerSecond: 0,
    });
    expect(config.rbac).toEqual({
      roleMap: { developer: 'edit', viewer: 'view' },
      groupMap: { developers: 'view' },
      username: { from: 'Email', prefix: 'oidc:' },
      groups: { prefix: 'oidc:' },
    });
  });

  it('loads every key of the documented format', () => {
    const config = parse(
      `usher:
  baseUrl: https://platform.example.com/
  security:
    invitations:
      expireAfter: P30D
      maxExpireAfter: P60D
      linkDisclosure: Secret
      requireGroupOrRole: false
  tenancy:
    namespaceLabel: example.com/team
    instanceNamespaces: [usher-system, platform]
  mail:
    host: smtp.example.com
    port: 2525
    tls: none
    allowSelfSigned: true
    from: "Platform <no-reply@example.com>"
    replyTo: help@example.com
    auth:
      user: no-reply@example.com
      passwordEnv: SMTP_PASSWORD
    pool: { maxConnections: 2 }
    rateLimitPerSecond: 10
    templatesDir: /etc/usher/templates
  accept:
    port: 9090
    loginUrl: https://console.example.com
    credentialsNamespace: platform-system
    oidc:
      issuer: https://login.example.com/
      clientId: usher
      clientSecretFile: /var/run/secrets/usher/oidc-client-secret
    csrfKeyFile: /var/run/secrets/usher/csrf-key
    rateLimit: { perClientPerMinute: 30, perTokenPerMinute: 5 }
    trustProxy: [10.0.0.0/8, "fd00::1"]
  access:
    onInvitationDelete: Keep
    deleteUserWithoutMemberships: false
  rbac:
    enabled: true
    roleMap: { developer: edit, platform.admin: admin }
    groupMap: { data-engineers: view }
    username: { from: Email, prefix: "oidc:" }
    groups: { prefix: "oidc-groups:" }
  controller:
    workers: 8
    resyncPeriod: PT1H
`,
      {
        env: { SMTP_PASSWORD: 's3cret\n' },
        readFile: files({
          '/var/run/secrets/usher/oidc-client-secret': 'oidc-s3cret\n',
          '/var/run/secrets/usher/csrf-key': `${'k'.repeat(48)}\n`,
        }),
      },
    );
    expect(config).toEqual({
      baseUrl: 'https://platform.example.com',
      namespace: 'usher-system',
      invitations: {
        expireAfter: 'P30D',
        expireAfterMs: 30 * DAY,
        maxExpireAfter: 'P60D',
        maxExpireAfterMs: 60 * DAY,
        linkDisclosure: 'Secret',
        requireGroupOrRole: false,
      },
      tenancy: { namespaceLabel: 'example.com/team', instanceNamespaces: ['usher-system', 'platform'] },
      mail: {
        host: 'smtp.example.com',
        port: 2525,
        tls: 'none',
        allowSelfSigned: true,
        from: 'Platform <no-reply@example.com>',
        replyTo: 'help@example.com',
        auth: { user: 'no-reply@example.com', password: 's3cret' },
        pool: { maxConnections: 2 },
        rateLimitPerSecond: 10,
        templatesDir: '/etc/usher/templates',
      },
      accept: {
        port: 9090,
        loginUrl: 'https://console.example.com',
        credentialsNamespace: 'platform-system',
        oidc: { issuer: 'https://login.example.com', clientId: 'usher', clientSecret: 'oidc-s3cret' },
        csrfKey: 'k'.repeat(48),
        rateLimit: { perClientPerMinute: 30, perTokenPerMinute: 5 },
        trustProxy: ['10.0.0.0/8', 'fd00::1'],
      },
      access: { onInvitationDelete: 'Keep', deleteUserWithoutMemberships: false },
      rbac: {
        roleMap: { developer: 'edit', 'platform.admin': 'admin' },
        groupMap: { 'data-engineers': 'view' },
        username: { from: 'Email', prefix: 'oidc:' },
        groups: { prefix: 'oidc-groups:' },
      },
      controller: { workers: 8, resyncPeriodMs: 3600 * 1000 },
    } satisfies UsherConfig);
  });
});

describe('parseConfig: defaults', () => {
  const defaults: UsherConfig = {
    baseUrl: 'http://localhost:8080',
    namespace: 'usher-system',
    invitations: {
      expireAfter: 'P7D',
      expireAfterMs: 7 * DAY,
      maxExpireAfter: 'P90D',
      maxExpireAfterMs: 90 * DAY,
      linkDisclosure: 'Status',
      requireGroupOrRole: true,
    },
    tenancy: { namespaceLabel: 'usher.dev/tenant', instanceNamespaces: [] },
    accept: {
      port: 8080,
      credentialsNamespace: 'usher-system',
      rateLimit: { perClientPerMinute: 60, perTokenPerMinute: 10 },
      trustProxy: [],
    },
    access: { onInvitationDelete: 'RemoveMembership', deleteUserWithoutMemberships: true },
    controller: { workers: 4, resyncPeriodMs: 10 * 60 * 1000 },
  };

  it.each([
    ['an empty file', ''],
    ['a file of comments', '# nothing configured yet\n'],
    ['an empty mapping', '{}'],
    ['an usher key with nothing under it', 'usher:\n  # baseUrl: https://x\n'],
    ['empty sections', 'usher:\n  security: {}\n  tenancy: {}\n  accept: {}\n  access: {}\n  rbac: {}\n  controller: {}\n'],
  ])('%s gives all defaults, no mail and no RBAC', (_name, yaml) => {
    const config = parse(yaml);
    expect(config).toEqual(defaults);
    expect(config).not.toHaveProperty('mail');
    expect(config).not.toHaveProperty('rbac');
  });

  it.each([
    ['no port, no tls', '', 587, 'starttls'],
    ['port 465', '    port: 465\n', 465, 'implicit'],
    ['tls: implicit', '    tls: implicit\n', 465, 'implicit'],
    ['port 25, tls: none', '    port: 25\n    tls: none\n', 25, 'none'],
    ['port 465 with explicit starttls', '    port: 465\n    tls: starttls\n', 465, 'starttls'],
  ])('mail with %s: port %d, tls %s', (_name, lines, port, tls) => {
    const { mail } = parse(mailWith(lines));
    expect(mail).toEqual({
      host: 'smtp.example.com',
      port,
      tls,
      allowSelfSigned: false,
      from: 'no-reply@example.com',
      pool: { maxConnections: 5 },
      rateLimitPerSecond: 0,
    });
  });

  it.each([
    ['https://platform.example.com/', 'https://platform.example.com'],
    ['http://localhost:3000', 'http://localhost:3000'],
    ['https://example.com/usher/', 'https://example.com/usher'],
  ])('baseUrl %s becomes %s', (given, expected) => {
    expect(parse(`usher:\n  baseUrl: ${given}\n`).baseUrl).toBe(expected);
  });

  it.each([
    ['a trailing newline', 'hunter2\n', 'hunter2'],
    ['a trailing CRLF', 'hunter2\r\n', 'hunter2'],
    ['no newline', 'hunter2', 'hunter2'],
    ['inner spaces kept', ' pass word \n', ' pass word '],
  ])('the password file with %s', (_name, content, password) => {
    const config = parse(mailWith('    auth: { user: u, passwordFile: /secret }\n'), { readFile: files({ '/secret': content }) });
    expect(config.mail?.auth).toEqual({ user: 'u', password });
  });

  it('reads the OIDC client secret from the environment and allows an http issuer on loopback', () => {
    const config = parse('usher:\n  accept:\n    oidc: { issuer: "http://127.0.0.1:9999/", clientId: usher, clientSecretEnv: OIDC_SECRET }\n', {
      env: { OIDC_SECRET: 'shh\n' },
    });
    expect(config.accept.oidc).toEqual({ issuer: 'http://127.0.0.1:9999', clientId: 'usher', clientSecret: 'shh' });
    expect(config.accept).not.toHaveProperty('csrfKey');
    expect(config.accept).not.toHaveProperty('loginUrl');
  });

  it('never prints the OIDC client secret or the CSRF key', () => {
    const error = errorOf(
      'usher:\n  accept:\n    port: nope\n    csrfKeyFile: /csrf\n    oidc: { issuer: https://login.example.com, clientId: usher, clientSecretFile: /oidc }\n',
      {
        readFile: files({ '/csrf': 'csrf-key-material-that-is-long-enough-0123\n', '/oidc': 'oidc-client-secret\n' }),
      },
    );
    expect(error.problems).toEqual(['usher.accept.port: must be a whole number, not "nope"']);
    expect(error.message).not.toContain('oidc-client-secret');
    expect(error.message).not.toContain('csrf-key-material');
  });

  it('reads the password from the environment variable, trimming a trailing newline', () => {
    const config = parse(mailWith('    auth: { user: u, passwordEnv: SMTP_PASSWORD }\n'), { env: { SMTP_PASSWORD: 'hunter2\n' } });
    expect(config.mail?.auth).toEqual({ user: 'u', password: 'hunter2' });
  });
});

describe('parseConfig: problems', () => {
  it.each<[string, string, string, Partial<ParseOptions>?]>([
    [
      'an unparseable duration',
      'usher:\n  security:\n    invitations:\n      expireAfter: 30 days\n',
      'usher-config.yaml: usher.security.invitations.expireAfter: "30 days" is not an ISO-8601 duration such as P7D or PT12H',
    ],
    ['a zero duration', 'usher:\n  controller:\n    resyncPeriod: PT0S\n', 'usher.controller.resyncPeriod: "PT0S" is zero'],
    [
      'a negative duration',
      'usher:\n  security:\n    invitations:\n      maxExpireAfter: -P1D\n',
      'usher.security.invitations.maxExpireAfter: "-P1D" is negative',
    ],
    [
      'a duration written as a number',
      'usher:\n  controller:\n    resyncPeriod: 600\n',
      'usher.controller.resyncPeriod: must be an ISO-8601 duration such as P7D or PT12H, not 600',
    ],
    [
      'expireAfter longer than maxExpireAfter',
      'usher:\n  security:\n    invitations:\n      expireAfter: P30D\n      maxExpireAfter: P14D\n',
      'usher.security.invitations.expireAfter: P30D is longer than usher.security.invitations.maxExpireAfter (P14D)',
    ],
    [
      'expireAfter longer than the default maxExpireAfter',
      'usher:\n  security:\n    invitations:\n      expireAfter: P1Y\n',
      'usher.security.invitations.expireAfter: P1Y is longer than usher.security.invitations.maxExpireAfter (P90D, the default)',
    ],
    ['a misspelt key', mailWith('    prot: 25\n'), 'usher.mail.prot: unknown key (did you mean "port"?)'],
    ['a key in the wrong case', 'usher:\n  baseURL: https://x.example.com\n', 'usher.baseURL: unknown key (did you mean "baseUrl"?)'],
    [
      'an unknown key with no near miss',
      'usher:\n  accept:\n    listen: 0.0.0.0\n',
      'usher.accept.listen: unknown key (known keys: port, loginUrl, credentialsNamespace, oidc, csrfKeyFile, rateLimit, trustProxy)',
    ],
    ['a key outside usher', 'baseUrl: https://x.example.com\n', 'baseUrl: unknown key (known keys: usher)'],
    [
      'an enum value in the wrong case',
      'usher:\n  security:\n    invitations:\n      linkDisclosure: secret\n',
      'usher.security.invitations.linkDisclosure: must be one of Status, Secret, not "secret" (did you mean "Secret"?)',
    ],
    ['an unknown tls mode', mailWith('    tls: ssl\n'), 'usher.mail.tls: must be one of implicit, starttls, none, not "ssl"'],
    [
      'a boolean written as yes',
      'usher:\n  security:\n    invitations:\n      requireGroupOrRole: yes\n',
      'usher.security.invitations.requireGroupOrRole: must be true or false, not "yes"',
    ],
    ['a port that is text', mailWith('    port: "587"\n'), 'usher.mail.port: must be a whole number, not "587"'],
    ['a port out of range', 'usher:\n  accept:\n    port: 70000\n', 'usher.accept.port: must be at most 65535, not 70000'],
    ['zero workers', 'usher:\n  controller:\n    workers: 0\n', 'usher.controller.workers: must be at least 1, not 0'],
    ['a negative rate limit', mailWith('    rateLimitPerSecond: -1\n'), 'usher.mail.rateLimitPerSecond: must be at least 0, not -1'],
    ['a section with no value', 'usher:\n  tenancy:\n', 'usher.tenancy: has no value; give it one or remove the key'],
    ['a section that is a list', 'usher:\n  accept: [8080]\n', 'usher.accept: must be a mapping of keys, not a list'],
    [
      'a bad label key',
      'usher:\n  tenancy:\n    namespaceLabel: my label\n',
      'usher.tenancy.namespaceLabel: "my label" is not a Kubernetes label key such as usher.dev/tenant',
    ],
    [
      'a bad namespace name',
      'usher:\n  tenancy:\n    instanceNamespaces: [ok, Not_OK]\n',
      'usher.tenancy.instanceNamespaces[1]: "Not_OK" is not a namespace name',
    ],
    ['a namespace listed twice', 'usher:\n  tenancy:\n    instanceNamespaces: [a, a]\n', 'usher.tenancy.instanceNamespaces: lists "a" twice'],
    ['a baseUrl that is not http(s)', 'usher:\n  baseUrl: ftp://files.example.com\n', 'usher.baseUrl: "ftp://files.example.com" is not an http(s) URL'],
    ['a baseUrl without a scheme', 'usher:\n  baseUrl: platform.example.com\n', 'usher.baseUrl: "platform.example.com" is not an http(s) URL'],
    [
      'a baseUrl with a query',
      'usher:\n  baseUrl: https://x.example.com/?a=1\n',
      'usher.baseUrl: "https://x.example.com/?a=1" must not have a query (?) or fragment (#)',
    ],
    ['mail without from', 'usher:\n  mail:\n    host: smtp.example.com\n', 'usher.mail.from: is required when usher.mail is set'],
    [
      'mail auth without user',
      mailWith('    auth: { passwordEnv: P }\n'),
      'usher.mail.auth.user: is required when usher.mail.auth is set',
      { env: { P: 'x' } },
    ],
    [
      'mail auth with both password sources',
      mailWith('    auth: { user: u, passwordFile: /secret, passwordEnv: P }\n'),
      'usher.mail.auth: has both passwordFile and passwordEnv; keep only one',
    ],
    ['mail auth with no password source', mailWith('    auth: { user: u }\n'), 'usher.mail.auth: needs passwordFile or passwordEnv'],
    [
      'an unreadable password file',
      mailWith('    auth: { user: u, passwordFile: /var/run/secrets/usher/smtp-password }\n'),
      'usher.mail.auth.passwordFile: cannot read /var/run/secrets/usher/smtp-password: no such file or directory (ENOENT)',
      { readFile: files({}) },
    ],
    [
      'an empty password file',
      mailWith('    auth: { user: u, passwordFile: /secret }\n'),
      'usher.mail.auth.passwordFile: the file /secret is empty',
      { readFile: files({ '/secret': '\n' }) },
    ],
    [
      'an unset password variable',
      mailWith('    auth: { user: u, passwordEnv: SMTP_PASSWORD }\n'),
      'usher.mail.auth.passwordEnv: the environment variable SMTP_PASSWORD is not set',
    ],
    [
      'an empty password variable',
      mailWith('    auth: { user: u, passwordEnv: SMTP_PASSWORD }\n'),
      'usher.mail.auth.passwordEnv: the environment variable SMTP_PASSWORD is empty',
      { env: { SMTP_PASSWORD: '' } },
    ],
    [
      'a YAML syntax error',
      'usher:\n  baseUrl: [https://x.example.com\n',
      'usher-config.yaml: line 3, column 1: YAML syntax error: unexpected end of the stream within a flow collection',
    ],
    [
      'a duplicated key',
      'usher:\n  baseUrl: https://a.example.com\n  baseUrl: https://b.example.com\n',
      'usher-config.yaml: line 3, column 3: YAML syntax error: duplicated mapping key',
    ],
    ['a file that is not a mapping', 'just some text\n', 'usher-config.yaml: the file: must be a mapping of keys, not "just some text"'],
    [
      'a loginUrl that is not http(s)',
      'usher:\n  accept:\n    loginUrl: console.example.com\n',
      'usher.accept.loginUrl: "console.example.com" is not an http(s) URL',
    ],
    [
      'a credentials namespace that is not a name',
      'usher:\n  accept:\n    credentialsNamespace: Usher_System\n',
      'usher.accept.credentialsNamespace: "Usher_System" is not a namespace name',
    ],
    [
      'a zero rate limit',
      'usher:\n  accept:\n    rateLimit: { perTokenPerMinute: 0 }\n',
      'usher.accept.rateLimit.perTokenPerMinute: must be at least 1, not 0',
    ],
    [
      'a rate limit that is not whole',
      'usher:\n  accept:\n    rateLimit: { perClientPerMinute: 2.5 }\n',
      'usher.accept.rateLimit.perClientPerMinute: must be a whole number, not 2.5',
    ],
    [
      'a trusted proxy that is no address',
      'usher:\n  accept:\n    trustProxy: [10.0.0.0/8, ingress]\n',
      'usher.accept.trustProxy[1]: "ingress" is not an IP address or CIDR range',
    ],
    [
      'a trusted range with a too long prefix',
      'usher:\n  accept:\n    trustProxy: [10.0.0.0/33]\n',
      'usher.accept.trustProxy[0]: "10.0.0.0/33" is not an IP address or CIDR range',
    ],
    [
      'oidc without clientId',
      'usher:\n  accept:\n    oidc: { issuer: https://login.example.com, clientSecretEnv: S }\n',
      'usher.accept.oidc.clientId: is required when usher.accept.oidc is set',
      { env: { S: 'x' } },
    ],
    [
      'oidc without a client secret',
      'usher:\n  accept:\n    oidc: { issuer: https://login.example.com, clientId: usher }\n',
      'usher.accept.oidc: needs clientSecretFile or clientSecretEnv (where the OIDC client secret is)',
    ],
    [
      'oidc with both secret sources',
      'usher:\n  accept:\n    oidc: { issuer: https://login.example.com, clientId: usher, clientSecretFile: /s, clientSecretEnv: S }\n',
      'usher.accept.oidc: has both clientSecretFile and clientSecretEnv; keep only one',
    ],
    [
      'an unset oidc secret variable',
      'usher:\n  accept:\n    oidc: { issuer: https://login.example.com, clientId: usher, clientSecretEnv: OIDC_SECRET }\n',
      'usher.accept.oidc.clientSecretEnv: the environment variable OIDC_SECRET is not set',
    ],
    [
      'an http issuer off loopback',
      'usher:\n  accept:\n    oidc: { issuer: http://login.example.com, clientId: usher, clientSecretEnv: S }\n',
      'usher.accept.oidc.issuer: "http://login.example.com" is not an https URL without query or fragment (http only for localhost)',
      { env: { S: 'x' } },
    ],
    [
      'an issuer with a query',
      'usher:\n  accept:\n    oidc: { issuer: "https://login.example.com/?tenant=a", clientId: usher, clientSecretEnv: S }\n',
      'usher.accept.oidc.issuer: "https://login.example.com/?tenant=a" is not an https URL without query or fragment',
      { env: { S: 'x' } },
    ],
    [
      'an unreadable CSRF key file',
      'usher:\n  accept:\n    csrfKeyFile: /csrf\n',
      'usher.accept.csrfKeyFile: cannot read /csrf: no such file or directory (ENOENT)',
      { readFile: files({}) },
    ],
    [
      'a short CSRF key',
      'usher:\n  accept:\n    csrfKeyFile: /csrf\n',
      'usher.accept.csrfKeyFile: the file /csrf holds fewer than 32 bytes',
      { readFile: files({ '/csrf': 'short\n' }) },
    ],
  ])('%s', (_name, yaml, expected, opts) => {
    const error = errorOf(yaml, opts);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.name).toBe('ConfigError');
    expect(error.message.split('\n')).toHaveLength(1);
    expect(error.message).toContain(expected);
    expect(error.message.startsWith('usher-config.yaml: ')).toBe(true);
  });

  it('reports every problem, one per line, each naming the file', () => {
    const error = errorOf(
      `usher:
  baseUrl: ftp://x
  security:
    invitations:
      expireAfter: 30 days
      linkDisclosure: status
  mail:
    host: smtp.example.com
    prot: 25
    auth: { user: u, passwordEnv: NOPE }
  controller: { workers: 0 }
`,
    );
    expect([...error.problems].sort()).toEqual(
      [
        'usher.baseUrl: "ftp://x" is not an http(s) URL such as https://platform.example.com',
        'usher.security.invitations.expireAfter: "30 days" is not an ISO-8601 duration such as P7D or PT12H',
        'usher.security.invitations.linkDisclosure: must be one of Status, Secret, not "status" (did you mean "Status"?)',
        'usher.mail.from: is required when usher.mail is set',
        'usher.mail.prot: unknown key (did you mean "port"?)',
        'usher.mail.auth.passwordEnv: the environment variable NOPE is not set',
        'usher.controller.workers: must be at least 1, not 0',
      ].sort(),
    );
    expect(error.message.split('\n')).toEqual(error.problems.map((p) => `usher-config.yaml: ${p}`));
  });

  it('never prints the password, even when other keys are wrong', () => {
    const error = errorOf(mailWith('    port: nope\n    auth: { user: u, passwordFile: /secret }\n'), {
      readFile: files({ '/secret': 'hunter2\n' }),
    });
    expect(error.message).toContain('usher.mail.port: must be a whole number, not "nope"');
    expect(error.message).not.toContain('hunter2');
  });

  it('names the configuration "configuration" when no source is given', () => {
    expect(() => parseConfig('usher:\n  acept: {}\n', { env: {} })).toThrow('configuration: usher.acept: unknown key (did you mean "accept"?)');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usher-config-test-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads a file from disk, reading the real password file and the given env', () => {
    const secret = join(dir, 'smtp-password');
    writeFileSync(secret, 'from-disk\n');
    const file = join(dir, 'usher-config.yaml');
    writeFileSync(file, mailWith(`    auth: { user: u, passwordFile: ${secret} }\n    replyTo: help@example.com\n`));
    const config = loadConfig(file, {});
    expect(config.mail?.auth).toEqual({ user: 'u', password: 'from-disk' });
    expect(config.mail?.replyTo).toBe('help@example.com');
  });

  it('names the file and the OS error when a password file is missing from disk', () => {
    const file = join(dir, 'missing-secret.yaml');
    const secret = join(dir, 'no-such-secret');
    writeFileSync(file, mailWith(`    auth: { user: u, passwordFile: ${secret} }\n`));
    expect(() => loadConfig(file, {})).toThrow(`${file}: usher.mail.auth.passwordFile: cannot read ${secret}: no such file or directory (ENOENT)`);
  });

  it('takes the password variable from the env it is given', () => {
    const file = join(dir, 'env.yaml');
    writeFileSync(file, mailWith('    auth: { user: u, passwordEnv: USHER_TEST_PASSWORD }\n'));
    expect(loadConfig(file, { USHER_TEST_PASSWORD: 'from-env' }).mail?.auth?.password).toBe('from-env');
    expect(() => loadConfig(file, {})).toThrow(`${file}: usher.mail.auth.passwordEnv: the environment variable USHER_TEST_PASSWORD is not set`);
  });

  it('names the file when it cannot be read', () => {
    const file = join(dir, 'absent.yaml');
    expect(() => loadConfig(file, {})).toThrow(new ConfigError(file, ['cannot read the file: no such file or directory (ENOENT)']));
  });

  it('loads an empty file as all defaults', () => {
    const file = join(dir, 'empty.yaml');
    writeFileSync(file, '');
    expect(loadConfig(file, {}).baseUrl).toBe('http://localhost:8080');
  });
});

describe('parseConfig: usher.identity', () => {
  const oidc = '  accept:\n    oidc: { issuer: https://login.example.com:443/realms/platform, clientId: usher-accept, clientSecretEnv: KC_SECRET }\n';
  const keycloak = (extra = '') =>
    `usher:\n${oidc}  identity:\n    provider: keycloak\n    keycloak:\n      url: https://login.example.com/\n      realm: platform\n      clientId: usher\n      clientSecretEnv: KC_SECRET\n${extra}`;

  it('is absent for provider none, the default', () => {
    expect(parse('')).not.toHaveProperty('identity');
    expect(parse('usher:\n  identity:\n    provider: none\n')).not.toHaveProperty('identity');
  });

  it('reads the Keycloak client and defaults onUserDelete to Disable', () => {
    expect(parse(keycloak(), { env: { KC_SECRET: 's3cret\n' } }).identity).toEqual({
      provider: 'keycloak',
      keycloak: { url: 'https://login.example.com', realm: 'platform', clientId: 'usher', clientSecret: 's3cret' },
      onUserDelete: 'Disable',
    });
  });

  it('reads the CA file and takes onUserDelete: Delete', () => {
    const yaml = keycloak('      caFile: /ca.pem\n').replace('  identity:\n', '  identity:\n    onUserDelete: Delete\n');
    const config = parse(yaml, { env: { KC_SECRET: 's' }, readFile: files({ '/ca.pem': '-----BEGIN CERTIFICATE-----\n' }) });
    expect(config.identity?.keycloak.caFile).toBe('/ca.pem');
    expect(config.identity?.onUserDelete).toBe('Delete');
  });

  it.each([
    [
      'no secret',
      keycloak().replace('      clientSecretEnv: KC_SECRET\n', ''),
      {},
      "usher.identity.keycloak: needs clientSecretFile or clientSecretEnv (where the secret of Usher's Keycloak client is)",
    ],
    ['an unset secret variable', keycloak(), {}, 'usher.identity.keycloak.clientSecretEnv: the environment variable KC_SECRET is not set'],
    [
      'no keycloak section',
      'usher:\n  identity:\n    provider: keycloak\n',
      {},
      'usher.identity.keycloak: is required when usher.identity.provider is keycloak',
    ],
    [
      'no SSO for existing accounts',
      keycloak().replace(oidc, ''),
      { KC_SECRET: 's' },
      'usher.accept.oidc: is required when usher.identity.provider is keycloak: people who already have an account there accept by signing in to it (issuer https://login.example.com/realms/platform)',
    ],
    [
      'a keycloak section without the provider',
      keycloak().replace('    provider: keycloak\n', ''),
      { KC_SECRET: 's' },
      'usher.identity.keycloak: is set but usher.identity.provider is none; set usher.identity.provider: keycloak to use it',
    ],
    [
      'a URL with /realms',
      keycloak().replace('https://login.example.com/', 'https://login.example.com/realms/platform'),
      { KC_SECRET: 's' },
      'includes /realms',
    ],
    [
      'a URL that is none',
      keycloak().replace('https://login.example.com/', 'login.example.com'),
      { KC_SECRET: 's' },
      'usher.identity.keycloak.url: "login.example.com" is not an http(s) URL',
    ],
    ['a typo', keycloak('      realms: x\n'), { KC_SECRET: 's' }, 'usher.identity.keycloak.realms: unknown key (did you mean "realm"?)'],
    ['an unknown provider', 'usher:\n  identity:\n    provider: dex\n', {}, 'usher.identity.provider: must be one of none, keycloak, not "dex"'],
    ['an unreadable CA file', keycloak('      caFile: /nope.pem\n'), { KC_SECRET: 's' }, 'usher.identity.keycloak.caFile: cannot read /nope.pem'],
  ])('refuses %s, naming the key', (_name, yaml, env, expected) => {
    const error = errorOf(yaml, { env, readFile: files({}) });
    expect(error.problems.join('\n')).toContain(expected);
  });

  it('defaults the sign-in link to the realm\u2019s account console', () => {
    expect(parse(keycloak(), { env: { KC_SECRET: 's' } }).accept.loginUrl).toBe('https://login.example.com/realms/platform/account');
  });

  it('the acceptance page alone does not read the client secret (its pod has none)', () => {
    const config = parse(keycloak().replace('clientSecretEnv: KC_SECRET\n', 'clientSecretFile: /not/mounted\n'), {
      env: { KC_SECRET: 's' },
      component: 'accept',
      readFile: files({}),
    });
    expect(config.identity?.keycloak.clientSecret).toBe('');
    expect(() =>
      parse(keycloak().replace('clientSecretEnv: KC_SECRET\n', 'clientSecretFile: /not/mounted\n'), {
        env: { KC_SECRET: 's' },
        component: 'controller',
        readFile: files({}),
      }),
    ).toThrow('usher.identity.keycloak.clientSecretFile: cannot read /not/mounted');
  });

  it('never prints the client secret', () => {
    const error = errorOf(keycloak().replace('https://login.example.com/', 'nope'), { env: { KC_SECRET: 'very-secret-value' } });
    expect(error.message).not.toContain('very-secret-value');
  });
});

describe('parseConfig: usher.access', () => {
  it('removes an invitation\u2019s membership when it is deleted, and a User left without any, by default', () => {
    expect(parse('').access).toEqual({ onInvitationDelete: 'RemoveMembership', deleteUserWithoutMemberships: true });
  });

  it('keeps memberships, or Users without any, when told', () => {
    expect(parse('usher:\n  access:\n    onInvitationDelete: Keep\n').access).toEqual({ onInvitationDelete: 'Keep', deleteUserWithoutMemberships: true });
    expect(parse('usher:\n  access:\n    deleteUserWithoutMemberships: false\n').access).toEqual({
      onInvitationDelete: 'RemoveMembership',
      deleteUserWithoutMemberships: false,
    });
  });

  it.each([
    [
      'a near miss',
      'usher:\n  access:\n    onInvitationDelete: RemoveMemberships\n',
      'usher.access.onInvitationDelete: must be one of RemoveMembership, Keep, not "RemoveMemberships" (did you mean "RemoveMembership"?)',
    ],
    [
      'not a boolean',
      'usher:\n  access:\n    deleteUserWithoutMemberships: yes\n',
      'usher.access.deleteUserWithoutMemberships: must be true or false, not "yes"',
    ],
    ['a typo', 'usher:\n  access:\n    onInvitationDeleted: Keep\n', 'usher.access.onInvitationDeleted: unknown key (did you mean "onInvitationDelete"?)'],
  ])('refuses %s, naming the key', (_name, yaml, problem) => {
    expect(errorOf(yaml).problems).toEqual([problem]);
  });
});

describe('parseConfig: usher.rbac', () => {
  const rbac = (lines: string, before = ''): string => `usher:\n${before}  rbac:\n${lines}`;
  const enabled = (lines = ''): string => rbac(`    enabled: true\n    roleMap: { developer: edit }\n${lines}`);
  const oidc = '  accept:\n    oidc: { issuer: https://login.example.com/realms/platform, clientId: usher-accept, clientSecretEnv: KC_SECRET }\n';
  const keycloak = `${oidc}  identity:\n    provider: keycloak\n    keycloak: { url: https://login.example.com, realm: platform, clientId: usher, clientSecretEnv: KC_SECRET }\n`;
  const env = { KC_SECRET: 's3cret' };

  it.each([
    ['absent', ''],
    ['an empty section', rbac('    {}\n').replace('  rbac:\n    {}', '  rbac: {}')],
    ['enabled: false', rbac('    enabled: false\n')],
    // Switched off, the rest is kept but unused: not even the rules across keys apply (only the shape).
    ['enabled: false with maps and names', rbac('    enabled: false\n    roleMap: { developer: edit }\n    username: { from: Email, prefix: "oidc:" }\n')],
    ['enabled: false with nothing mapped', rbac('    enabled: false\n    roleMap: {}\n    groupMap: {}\n')],
    ['enabled: false with IdentityUsername and no usher.identity', rbac('    enabled: false\n    username: { from: IdentityUsername }\n')],
  ])('is off (config.rbac absent): %s', (_name, yaml) => {
    expect(parse(yaml)).not.toHaveProperty('rbac');
  });

  it.each<[string, string, Partial<ParseOptions>, NonNullable<UsherConfig['rbac']>]>([
    [
      'a role mapped, without usher.identity: the username is the address, no prefixes',
      enabled(),
      {},
      { roleMap: { developer: 'edit' }, groupMap: {}, username: { from: 'Email', prefix: '' }, groups: { prefix: '' } },
    ],
    [
      'a group mapped only',
      rbac('    enabled: true\n    groupMap: { developers: view }\n'),
      {},
      { roleMap: {}, groupMap: { developers: 'view' }, username: { from: 'Email', prefix: '' }, groups: { prefix: '' } },
    ],
    [
      'with usher.identity (Keycloak): the username is the account’s there',
      rbac('    enabled: true\n    roleMap: { developer: edit }\n', keycloak),
      { env },
      { roleMap: { developer: 'edit' }, groupMap: {}, username: { from: 'IdentityUsername', prefix: '' }, groups: { prefix: '' } },
    ],
    [
      'with usher.identity and from: Email',
      rbac('    enabled: true\n    roleMap: { developer: edit }\n    username: { from: Email }\n', keycloak),
      { env },
      { roleMap: { developer: 'edit' }, groupMap: {}, username: { from: 'Email', prefix: '' }, groups: { prefix: '' } },
    ],
    [
      'prefixes, and one ClusterRole for several names',
      enabled('    groupMap: { developers: edit, "data.engineers_2": view }\n    username: { prefix: "oidc:" }\n    groups: { prefix: "oidc:" }\n'),
      {},
      {
        roleMap: { developer: 'edit' },
        groupMap: { developers: 'edit', 'data.engineers_2': 'view' },
        username: { from: 'Email', prefix: 'oidc:' },
        groups: { prefix: 'oidc:' },
      },
    ],
    [
      'ClusterRole names that are path segments, not DNS names',
      rbac('    enabled: true\n    roleMap: { a: "system:aggregate-to-edit", b: "...", c: ".hidden", d: "Odd Name" }\n'),
      {},
      {
        roleMap: { a: 'system:aggregate-to-edit', b: '...', c: '.hidden', d: 'Odd Name' },
        groupMap: {},
        username: { from: 'Email', prefix: '' },
        groups: { prefix: '' },
      },
    ],
  ])('reads %s', (_name, yaml, opts, expected) => {
    expect(parse(yaml, opts).rbac).toEqual(expected);
  });

  const roleRule = `is not a platform role name as in an invitation's spec.roles[].name (letters, digits, ".", "_" and "-", beginning and ending with a letter or digit, at most 128 characters)`;
  const clusterRole = 'a ClusterRole name such as edit or view (not empty, not "." or "..", no "/" or "%")';
  const clusterRoleRule = `is not ${clusterRole}`;

  it.each<[string, string, string[], Partial<ParseOptions>?]>([
    [
      'enabled with nothing mapped',
      rbac('    enabled: true\n'),
      ['usher.rbac: binds nothing: map a role or a group, or leave usher.rbac.enabled false (usher.rbac.roleMap and usher.rbac.groupMap are both empty)'],
    ],
    [
      'enabled with both maps empty',
      rbac('    enabled: true\n    roleMap: {}\n    groupMap: {}\n'),
      ['usher.rbac: binds nothing: map a role or a group, or leave usher.rbac.enabled false (usher.rbac.roleMap and usher.rbac.groupMap are both empty)'],
    ],
    [
      'IdentityUsername without usher.identity',
      enabled('    username: { from: IdentityUsername }\n'),
      [
        "usher.rbac.username.from: IdentityUsername needs usher.identity.provider: keycloak (the username is that of the person's account at the identity provider, which exists only with one); use Email, or set up usher.identity",
      ],
    ],
    [
      'IdentityUsername with usher.identity.provider: none',
      rbac('    enabled: true\n    roleMap: { developer: edit }\n    username: { from: IdentityUsername }\n', '  identity:\n    provider: none\n'),
      ['usher.rbac.username.from: IdentityUsername needs usher.identity.provider: keycloak'],
    ],
    [
      'a role name with a space',
      enabled('    groupMap: {}\n').replace('developer: edit', '"lead dev": edit'),
      [`usher.rbac.roleMap.lead dev: the key "lead dev" ${roleRule}`],
    ],
    ['a role name ending in a dash', rbac('    enabled: true\n    roleMap: { "dev-": edit }\n'), [`usher.rbac.roleMap.dev-: the key "dev-" ${roleRule}`]],
    [
      'a role name longer than the CRD allows',
      rbac(`    enabled: true\n    roleMap: { ${'r'.repeat(129)}: edit }\n`),
      [`usher.rbac.roleMap.${'r'.repeat(129)}: the key is longer than 128 characters`],
    ],
    [
      'a group name that is a path',
      rbac('    enabled: true\n    groupMap: { /tenants/acme/developers: view }\n'),
      [
        'usher.rbac.groupMap./tenants/acme/developers: the key "/tenants/acme/developers" is not a group name as in an invitation\'s spec.groups (letters, digits, ".", "_" and "-", beginning and ending with a letter or digit, at most 128 characters)',
      ],
    ],
    [
      'a ClusterRole name with a slash',
      rbac('    enabled: true\n    roleMap: { developer: rbac/edit }\n'),
      [`usher.rbac.roleMap.developer: "rbac/edit" ${clusterRoleRule}`],
    ],
    [
      'a ClusterRole name with a percent sign',
      rbac('    enabled: true\n    groupMap: { developers: "100%" }\n'),
      [`usher.rbac.groupMap.developers: "100%" ${clusterRoleRule}`],
    ],
    ['a ClusterRole named "."', rbac('    enabled: true\n    roleMap: { developer: "." }\n'), [`usher.rbac.roleMap.developer: "." ${clusterRoleRule}`]],
    ['a ClusterRole named ".."', rbac('    enabled: true\n    roleMap: { developer: ".." }\n'), [`usher.rbac.roleMap.developer: ".." ${clusterRoleRule}`]],
    ['an empty ClusterRole name', rbac('    enabled: true\n    roleMap: { developer: "" }\n'), [`usher.rbac.roleMap.developer: "" ${clusterRoleRule}`]],
    [
      'a ClusterRole name that is too long',
      rbac(`    enabled: true\n    roleMap: { developer: ${'c'.repeat(254)} }\n`),
      ['usher.rbac.roleMap.developer: is longer than 253 characters'],
    ],
    [
      'a ClusterRole that is no name',
      rbac('    enabled: true\n    roleMap: { developer: [edit, view] }\n'),
      [`usher.rbac.roleMap.developer: must be ${clusterRole}, not a list`],
    ],
    // A key that looks like a number is a key, not a list index.
    [
      'a role named by digits, mapped to a bad name',
      rbac('    enabled: true\n    roleMap: { "42": a/b }\n'),
      [`usher.rbac.roleMap.42: "a/b" ${clusterRoleRule}`],
    ],
    ['a map that is a list', rbac('    enabled: true\n    roleMap: [edit]\n'), ['usher.rbac.roleMap: must be a mapping of keys, not a list']],
    [
      'an unknown username source',
      enabled('    username: { from: email }\n'),
      ['usher.rbac.username.from: must be one of IdentityUsername, Email, not "email" (did you mean "Email"?)'],
    ],
    ['a prefix that is no text', enabled('    groups: { prefix: 1 }\n'), ['usher.rbac.groups.prefix: must be text, not 1']],
    ['enabled: yes', rbac('    enabled: yes\n    roleMap: { developer: edit }\n'), ['usher.rbac.enabled: must be true or false, not "yes"']],
    ['a typo', enabled('    groupsMap: { developers: view }\n'), ['usher.rbac.groupsMap: unknown key (did you mean "groupMap"?)']],
    // Shape problems are reported whether or not it is enabled: a typo is a typo.
    [
      'a typo while switched off',
      rbac('    enabled: false\n    rolemap: { developer: edit }\n'),
      ['usher.rbac.rolemap: unknown key (did you mean "roleMap"?)'],
    ],
    // The wrong entries alone are dropped: the others are still checked, and "binds nothing" is not said of maps that were not empty.
    [
      'several wrong entries at once',
      rbac('    enabled: true\n    roleMap: { "lead dev": edit, developer: a/b, viewer: view }\n    groupMap: { "g/h": "" }\n'),
      [
        `usher.rbac.roleMap.lead dev: the key "lead dev" ${roleRule}`,
        `usher.rbac.roleMap.developer: "a/b" ${clusterRoleRule}`,
        'usher.rbac.groupMap.g/h: the key "g/h" is not a group name',
        `usher.rbac.groupMap.g/h: "" ${clusterRoleRule}`,
      ],
    ],
    ['only wrong entries', rbac('    enabled: true\n    roleMap: { developer: a/b }\n'), [`usher.rbac.roleMap.developer: "a/b" ${clusterRoleRule}`]],
  ])('refuses %s, naming the key', (_name, yaml, expected, opts) => {
    const { problems } = errorOf(yaml, opts);
    expect(problems).toHaveLength(expected.length);
    expected.forEach((problem, i) => {
      expect(problems[i]).toContain(problem);
    });
  });
});
