// The raw shape of Usher's configuration file, as a JSON schema, and its
// validation turned into plain-words problems ("usher.mail.prot: unknown key
// (did you mean "port"?)"). Defaults, durations, secrets and rules across keys
// are the loader's business (load.ts); this file only knows the shape.
import { Ajv, type DefinedError } from 'ajv';
import type { FromSchema, JSONSchema } from 'json-schema-to-ts';

// `description` is what a wrong value is told it must be ("must be <description>").
const duration = { type: 'string', description: 'an ISO-8601 duration such as P7D or PT12H' } as const;
const text = { type: 'string', minLength: 1 } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;
const perMinute = { type: 'integer', minimum: 1 } as const;
const namespaceName = {
  type: 'string',
  maxLength: 63,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
  description: 'a namespace name (lowercase letters, digits and dashes)',
} as const;

// An invitation's platform role and group names: the CRD's patterns for
// spec.roles[].name and spec.groups[] (crds/usher.dev_userinvitations.yaml),
// used for the keys of usher.rbac's maps (a wrong key is told `the key "x" is
// not <description>`).
const platformName = { maxLength: 128, pattern: '^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$' } as const;
const nameChars = 'letters, digits, ".", "_" and "-", beginning and ending with a letter or digit, at most 128 characters';
const roleName = { type: 'string', ...platformName, description: `a platform role name as in an invitation's spec.roles[].name (${nameChars})` } as const;
const groupName = { type: 'string', ...platformName, description: `a group name as in an invitation's spec.groups (${nameChars})` } as const;
// What the API server takes as a ClusterRole's name (a path segment): not
// empty, not "." or "..", no "/" or "%". Written without a lookahead, so that
// the chart's values.schema.json (Go's regexp) can say the same.
const clusterRoleName = {
  type: 'string',
  maxLength: 253,
  pattern: '^([^/%.][^/%]*|\\.[^/%.][^/%]*|\\.\\.[^/%]+)$',
  description: 'a ClusterRole name such as edit or view (not empty, not "." or "..", no "/" or "%")',
} as const;
/** A mapping from names (keys) to the ClusterRole each is bound to. */
const bindingMap = <const K extends JSONSchema>(keys: K) => ({ type: 'object', propertyNames: keys, additionalProperties: clusterRoleName }) as const;

/** A closed object schema (its literal type kept, for FromSchema). */
type ClosedObject<P extends Record<string, JSONSchema>> = { readonly type: 'object'; readonly additionalProperties: false; readonly properties: P };

/** A closed object: unknown keys are errors, so typos do not silently fall back to defaults. */
function object<const P extends Record<string, JSONSchema>>(properties: P): ClosedObject<P>;
function object<const P extends Record<string, JSONSchema>, const R extends readonly (keyof P & string)[]>(
  properties: P,
  required: R,
): ClosedObject<P> & { readonly required: R };
function object(properties: Record<string, JSONSchema>, required?: readonly string[]): ClosedObject<Record<string, JSONSchema>> {
  return { type: 'object', additionalProperties: false, properties, ...(required && { required }) };
}

export const configSchema = object({
  usher: object({
    baseUrl: { type: 'string', description: 'an http(s) URL such as https://platform.example.com' },
    namespace: namespaceName,
    security: object({
      invitations: object({
        expireAfter: duration,
        maxExpireAfter: duration,
        linkDisclosure: { enum: ['Status', 'Secret'] },
        requireGroupOrRole: { type: 'boolean' },
      }),
    }),
    tenancy: object({
      namespaceLabel: {
        type: 'string',
        maxLength: 317,
        pattern: '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$',
        description: 'a Kubernetes label key such as usher.dev/tenant',
      },
      instanceNamespaces: {
        type: 'array',
        uniqueItems: true,
        items: namespaceName,
      },
    }),
    mail: object(
      {
        host: text,
        port,
        tls: { enum: ['implicit', 'starttls', 'none'] },
        allowSelfSigned: { type: 'boolean' },
        from: text,
        replyTo: text,
        auth: object({ user: text, passwordFile: text, passwordEnv: text }, ['user']),
        pool: object({ maxConnections: { type: 'integer', minimum: 1 } }),
        rateLimitPerSecond: { type: 'number', minimum: 0 },
        templatesDir: text,
      },
      ['host', 'from'],
    ),
    accept: object({
      port,
      loginUrl: { type: 'string', description: 'an http(s) URL such as https://console.example.com' },
      credentialsNamespace: namespaceName,
      oidc: object(
        {
          issuer: { type: 'string', description: 'an https URL such as https://login.example.com' },
          clientId: text,
          clientSecretFile: text,
          clientSecretEnv: text,
        },
        ['issuer', 'clientId'],
      ),
      csrfKeyFile: text,
      rateLimit: object({ perClientPerMinute: perMinute, perTokenPerMinute: perMinute }),
      trustProxy: {
        description: 'a list of proxy addresses or CIDR ranges, or the number of proxy hops to believe (such as 1 behind one Ingress)',
        oneOf: [
          { type: 'array', uniqueItems: true, items: { type: 'string', minLength: 1, description: 'an IP address or CIDR range such as 10.0.0.0/8' } },
          { type: 'integer', minimum: 1, maximum: 10 },
        ],
      },
    }),
    identity: object({
      provider: { enum: ['none', 'keycloak'] },
      onUserDelete: { enum: ['Disable', 'Delete'] },
      keycloak: object(
        {
          url: { type: 'string', description: "an http(s) URL such as https://login.example.com (Keycloak's base, without /realms)" },
          realm: text,
          clientId: text,
          clientSecretFile: text,
          clientSecretEnv: text,
          caFile: text,
        },
        ['url', 'realm', 'clientId'],
      ),
    }),
    access: object({
      onInvitationDelete: { enum: ['RemoveMembership', 'Keep'] },
      deleteUserWithoutMemberships: { type: 'boolean' },
    }),
    rbac: object({
      enabled: { type: 'boolean' },
      roleMap: bindingMap(roleName),
      groupMap: bindingMap(groupName),
      username: object({ from: { enum: ['IdentityUsername', 'Email'] }, prefix: { type: 'string' } }),
      groups: object({ prefix: { type: 'string' } }),
    }),
    controller: object({
      workers: { type: 'integer', minimum: 1 },
      resyncPeriod: duration,
    }),
  }),
});

/**
 * The file as written: every key optional except where the schema says,
 * derived from the schema so the two cannot drift apart.
 */
export type RawConfig = FromSchema<typeof configSchema>;

const validate = new Ajv({ allErrors: true, verbose: true, strict: true }).compile<RawConfig>(configSchema);

/** One ajv finding: where in the document (path segments) and what to say about it. */
export interface SchemaProblem {
  /** Segments of the offending value; for an unknown key, the key itself is the last one. */
  path: (string | number)[];
  message: string;
}

/** The document's shape problems, in plain words; empty when it fits the schema. */
export function checkShape(doc: unknown): SchemaProblem[] {
  if (validate(doc)) return [];
  return (
    ((validate.errors as DefinedError[] | null | undefined) ?? [])
      // A wrong key of a mapping (propertyNames) is reported by the rule it
      // broke, and again as "property name must be valid": keep the first.
      .filter((error) => error.keyword !== 'propertyNames')
      .map((error) => describeError(error, doc))
  );
}

function describeError(error: DefinedError, doc: unknown): SchemaProblem {
  if (error.propertyName !== undefined) return describeKeyError(error, error.propertyName, doc);
  const path = pointerToPath(error.instancePath, doc);
  const hint = typeof error.parentSchema?.description === 'string' ? error.parentSchema.description : undefined;
  const got = describeValue(error.data);
  switch (error.keyword) {
    case 'additionalProperties': {
      const key = error.params.additionalProperty;
      const known = Object.keys((error.parentSchema?.properties ?? {}) as Record<string, unknown>);
      const guess = closest(key, known);
      const advice = guess === undefined ? `known keys: ${known.join(', ')}` : `did you mean "${guess}"?`;
      return { path: [...path, key], message: `unknown key (${advice})` };
    }
    case 'required': {
      const parent = formatPath(path);
      return {
        path: [...path, error.params.missingProperty],
        message: parent === '' ? 'is required' : `is required when ${parent} is set`,
      };
    }
    case 'type': {
      if (error.data === null) return { path, message: 'has no value; give it one or remove the key' };
      const wanted = hint ?? TYPE_WORDS[error.params.type] ?? error.params.type;
      return { path, message: `must be ${wanted}, not ${got}` };
    }
    case 'enum': {
      const allowed = error.params.allowedValues.map(String);
      const guess = typeof error.data === 'string' ? closest(error.data, allowed) : undefined;
      return {
        path,
        message: `must be one of ${allowed.join(', ')}, not ${got}${guess === undefined ? '' : ` (did you mean "${guess}"?)`}`,
      };
    }
    case 'pattern':
      return { path, message: `${got} is not ${hint ?? `valid (${error.message ?? error.keyword})`}` };
    case 'maxLength':
      return { path, message: `is longer than ${error.params.limit} characters` };
    case 'minLength':
      return { path, message: 'must not be empty' };
    case 'minimum':
      return { path, message: `must be at least ${error.params.limit}, not ${got}` };
    case 'maximum':
      return { path, message: `must be at most ${error.params.limit}, not ${got}` };
    case 'uniqueItems':
      return { path, message: `lists ${describeValue(Array.isArray(error.data) ? error.data[error.params.i] : undefined)} twice` };
    default:
      return { path, message: error.message ?? `fails the ${error.keyword} rule` };
  }
}

/**
 * A key of a mapping that breaks the mapping's rule for keys (propertyNames,
 * as in usher.rbac.roleMap): named as the key's own path, so that the key
 * alone is dropped and the rest of the mapping still checked.
 */
function describeKeyError(error: DefinedError, key: string, doc: unknown): SchemaProblem {
  const path = [...pointerToPath(error.instancePath, doc), key];
  const hint = typeof error.parentSchema?.description === 'string' ? error.parentSchema.description : undefined;
  switch (error.keyword) {
    case 'pattern':
      return { path, message: `the key ${JSON.stringify(key)} is not ${hint ?? `valid (${error.message ?? error.keyword})`}` };
    case 'maxLength':
      return { path, message: `the key is longer than ${error.params.limit} characters` };
    default:
      return { path, message: `the key ${JSON.stringify(key)} ${error.message ?? `fails the ${error.keyword} rule`}` };
  }
}

const TYPE_WORDS: Partial<Record<string, string>> = {
  string: 'text',
  integer: 'a whole number',
  number: 'a number',
  boolean: 'true or false',
  object: 'a mapping of keys',
  array: 'a list',
};

function describeValue(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  // JSON.stringify gives undefined (typed as string) for undefined.
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/** The pointer's segments: list indexes as numbers, keys (even "123", a key of a mapping such as usher.rbac.roleMap) as text. */
function pointerToPath(pointer: string, doc: unknown): (string | number)[] {
  if (pointer === '') return [];
  let node = doc;
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'))
    .map((s) => {
      const inList = Array.isArray(node);
      node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[s] : undefined;
      return inList && /^\d+$/.test(s) ? Number(s) : s;
    });
}

/** `usher.tenancy.instanceNamespaces[0]`: how a key is named in messages. */
export function formatPath(path: readonly (string | number)[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

/**
 * The candidate a near-miss most likely meant: same letters in another case,
 * or within a small edit distance (one edit for short words, two otherwise).
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  let best: { candidate: string; distance: number } | undefined;
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    if (distance <= (word.length <= 4 ? 1 : 2) && (best === undefined || distance < best.distance)) {
      best = { candidate, distance };
    }
  }
  return best?.candidate;
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit ("prot" for "port"). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  const at = (i: number, j: number): number => d[i]?.[j] ?? Infinity;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = best;
    }
  }
  return at(a.length, b.length);
}
