// RawConfig is derived from configSchema (FromSchema): these are compile-time
// checks (`npm run typecheck` fails when they do not hold) that the derived
// type is the file's shape, with the schema's `required` keys required.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { checkShape, type RawConfig } from '../../src/config/schema.ts';

type Usher = NonNullable<RawConfig['usher']>;

describe('RawConfig, derived from configSchema', () => {
  it('has every key optional at the top', () => {
    expectTypeOf<RawConfig>().toEqualTypeOf<{ usher?: Usher }>();
    expectTypeOf<Usher['baseUrl']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<Usher['namespace']>().toEqualTypeOf<string | undefined>();
    expectTypeOf<NonNullable<Usher['controller']>>().toEqualTypeOf<{ workers?: number; resyncPeriod?: string }>();
  });

  it('keeps the enums as unions of their values', () => {
    expectTypeOf<NonNullable<NonNullable<Usher['security']>['invitations']>>().toEqualTypeOf<{
      expireAfter?: string;
      maxExpireAfter?: string;
      linkDisclosure?: 'Status' | 'Secret';
      requireGroupOrRole?: boolean;
    }>();
    expectTypeOf<NonNullable<Usher['mail']>['tls']>().toEqualTypeOf<'implicit' | 'starttls' | 'none' | undefined>();
  });

  it('makes the keys the schema requires required', () => {
    expectTypeOf<NonNullable<Usher['mail']>>().toEqualTypeOf<{
      host: string;
      port?: number;
      tls?: 'implicit' | 'starttls' | 'none';
      allowSelfSigned?: boolean;
      from: string;
      replyTo?: string;
      auth?: { user: string; passwordFile?: string; passwordEnv?: string };
      pool?: { maxConnections?: number };
      rateLimitPerSecond?: number;
      templatesDir?: string;
    }>();
    expectTypeOf<NonNullable<NonNullable<Usher['accept']>['oidc']>>().toEqualTypeOf<{
      issuer: string;
      clientId: string;
      clientSecretFile?: string;
      clientSecretEnv?: string;
    }>();
  });

  it('reads the oneOf of trustProxy as a union, and lists as arrays', () => {
    expectTypeOf<NonNullable<Usher['accept']>['trustProxy']>().toEqualTypeOf<string[] | number | undefined>();
    expectTypeOf<NonNullable<Usher['tenancy']>>().toEqualTypeOf<{ namespaceLabel?: string; instanceNamespaces?: string[] }>();
    expectTypeOf<NonNullable<NonNullable<Usher['accept']>['rateLimit']>>().toEqualTypeOf<{ perClientPerMinute?: number; perTokenPerMinute?: number }>();
  });

  it('reads usher.rbac’s maps as records of names (the names’ rules are in the schema, not the type)', () => {
    expectTypeOf<NonNullable<Usher['rbac']>>().toEqualTypeOf<{
      enabled?: boolean;
      roleMap?: Record<string, string>;
      groupMap?: Record<string, string>;
      username?: { from?: 'IdentityUsername' | 'Email'; prefix?: string };
      groups?: { prefix?: string };
    }>();
  });

  it('names a wrong key of a map by its own path, once, and a key of digits as a key', () => {
    expect(checkShape({ usher: { rbac: { roleMap: { 'lead dev': 'edit', developer: 'edit' }, groupMap: { '7': 'a/b' } } } })).toEqual([
      {
        path: ['usher', 'rbac', 'roleMap', 'lead dev'],
        message: expect.stringMatching(/^the key "lead dev" is not a platform role name/) as unknown,
      },
      { path: ['usher', 'rbac', 'groupMap', '7'], message: expect.stringMatching(/^"a\/b" is not a ClusterRole name/) as unknown },
    ]);
    // List indexes stay numbers.
    expect(checkShape({ usher: { tenancy: { instanceNamespaces: ['ok', 'Not_OK'] } } }).map((p) => p.path)).toEqual([
      ['usher', 'tenancy', 'instanceNamespaces', 1],
    ]);
  });

  it('and a document of that type is one the schema accepts at run time (type and validation agree)', () => {
    const full: Required<RawConfig> = {
      usher: {
        baseUrl: 'https://join.example.com',
        namespace: 'usher-system',
        security: { invitations: { expireAfter: 'P7D', maxExpireAfter: 'P90D', linkDisclosure: 'Secret', requireGroupOrRole: true } },
        tenancy: { namespaceLabel: 'usher.dev/tenant', instanceNamespaces: ['platform'] },
        mail: {
          host: 'smtp.example.com',
          port: 587,
          tls: 'starttls',
          from: 'Platform <no-reply@example.com>',
          auth: { user: 'u', passwordEnv: 'SMTP_PASSWORD' },
        },
        accept: {
          port: 8080,
          trustProxy: 1,
          rateLimit: { perClientPerMinute: 60 },
          oidc: { issuer: 'https://login.example.com', clientId: 'usher', clientSecretEnv: 'X' },
        },
        rbac: {
          enabled: true,
          roleMap: { developer: 'edit' },
          groupMap: { developers: 'view' },
          username: { from: 'Email', prefix: 'oidc:' },
          groups: { prefix: 'oidc:' },
        },
        controller: { workers: 4, resyncPeriod: 'PT10M' },
      },
    };
    expect(checkShape(full)).toEqual([]);
    expect(checkShape({ usher: { ...full.usher, accept: { trustProxy: 'all' } } }).map((p) => p.path.join('.'))).toContain('usher.accept.trustProxy');
  });
});
