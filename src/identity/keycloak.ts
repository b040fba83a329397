// The identity provider port (provider.ts) on Keycloak's admin REST API.
//
// Usher signs in as the confidential client `usher` of the target realm with the
// client-credentials grant, and its service account holds the realm-management role
// manage-users (tools/keycloak/realm.ts says why that one is enough). Accounts are
// Keycloak users whose username is the email; Usher's marks are two attributes,
// usher_user_uid (the Kubernetes User that made the account) and usher_roles, which
// need the realm's user profile to keep unmanaged attributes (ADMIN_EDIT: check()
// says so otherwise); memberships are groups under /tenants and /instance, made on
// demand. Keycloak 26 replaces the root attributes (email, firstName, lastName) and
// every other attribute when an update carries `attributes`, so updates either leave
// attributes out or send them all back with the root ones (setAccess).
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import KeycloakAdminClient, { NetworkError } from '@keycloak/keycloak-admin-client';
import type GroupRepresentation from '@keycloak/keycloak-admin-client/lib/defs/groupRepresentation.js';
import type UserRepresentation from '@keycloak/keycloak-admin-client/lib/defs/userRepresentation.js';
import { silentLogger, type Logger } from '../runtime/log.ts';
import { argon2idCredential, UnsupportedHashError } from './argon2-credential.ts';
import { isManagedGroup, MANAGED_GROUP_ROOTS } from '../invitation/identity.ts';
import { IdentityProviderError, type Health, type IdentityAccount, type IdentityProvider } from './provider.ts';

export interface KeycloakProviderConfig {
  /** Keycloak's base URL, without /realms. */
  url: string;
  realm: string;
  clientId: string;
  clientSecret: string;
  /** PEM file of the CA that signed Keycloak's certificate, when it is not a public one. */
  caFile?: string;
  /** Per request, token requests included (10 s). */
  timeoutMs?: number;
}

export const USER_UID_ATTRIBUTE = 'usher_user_uid';
export const ROLES_ATTRIBUTE = 'usher_roles';
/** The realm-management role Usher's service account needs (tools/keycloak/realm.ts). */
export const REQUIRED_ROLE = 'manage-users';

/** A token is renewed this long before it expires. */
const TOKEN_MARGIN_MS = 30_000;
const PAGE = 100;

export function createKeycloakProvider(config: KeycloakProviderConfig, log: Logger = silentLogger): IdentityProvider {
  const base = config.url.replace(/\/+$/, '');
  const { realm, clientId } = config;
  const timeoutMs = config.timeoutMs ?? 10_000;
  const where = `keycloak at ${base} realm ${realm}`;
  if (config.caFile) trustCa(readFileSync(config.caFile, 'utf8'));

  const tokens = new ClientCredentials({ base, realm, clientId, clientSecret: config.clientSecret, timeoutMs, where });
  const admin = new KeycloakAdminClient({ baseUrl: base, realmName: realm, timeout: timeoutMs });
  admin.registerTokenProvider({ getAccessToken: () => tokens.get() });

  /** One admin call with Usher's error mapping; a 401 (token revoked or expired early) gets one fresh token and one retry. */
  const call = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof IdentityProviderError) throw err;
        if (err instanceof NetworkError && err.response.status === 401 && attempt === 0) {
          tokens.invalidate();
          continue;
        }
        throw toProviderError(err, where, what, clientId);
      }
    }
  };

  const status = (err: unknown): number | undefined => (err instanceof NetworkError ? err.response.status : undefined);

  // ---- groups

  /** Group ids by path; an entry is dropped when Keycloak says the group is gone (404) or a create raced (409). */
  const groupIds = new Map<string, string>();
  const forgetGroup = (path: string): void => {
    for (const key of [...groupIds.keys()]) if (key === path || key.startsWith(`${path}/`)) groupIds.delete(key);
  };

  const findGroup = async (path: string): Promise<string | undefined> => {
    try {
      const group = await admin.realms.getGroupByPath({ realm, path: path.slice(1) });
      return (group as GroupRepresentation | null)?.id;
    } catch (err) {
      if (status(err) === 404) return undefined;
      throw err;
    }
  };

  /** The id of the group at `path`, creating it and any missing parents. */
  const ensureGroup = async (path: string): Promise<string> => {
    const cached = groupIds.get(path);
    if (cached) return cached;
    let id = await call(`look up group ${path}`, () => findGroup(path));
    if (!id) {
      const slash = path.lastIndexOf('/');
      const name = path.slice(slash + 1);
      const parent = slash > 0 ? await ensureGroup(path.slice(0, slash)) : undefined;
      try {
        id = await call(`create group ${path}`, async () =>
          parent ? (await admin.groups.createChildGroup({ id: parent }, { name })).id : (await admin.groups.create({ name })).id,
        );
        log.info({ group: path }, 'keycloak: created group');
      } catch (err) {
        // Made meanwhile (another replica, an admin): use that one.
        if (!(err instanceof KeycloakError && err.status === 409)) throw err;
        id = await call(`look up group ${path}`, () => findGroup(path));
        if (!id) throw err;
      }
    }
    groupIds.set(path, id);
    return id;
  };

  /** Joins the group at `path`; a cached id of a group deleted meanwhile is looked up (or made) again once. */
  const join = async (userId: string, path: string): Promise<void> => {
    try {
      const groupId = await ensureGroup(path);
      await call(`add an account to group ${path}`, () => admin.users.addToGroup({ id: userId, groupId }));
    } catch (err) {
      if (!(err instanceof KeycloakError && err.status === 404)) throw err;
      forgetGroup(path);
      const groupId = await ensureGroup(path);
      await call(`add an account to group ${path}`, () => admin.users.addToGroup({ id: userId, groupId }));
    }
  };

  /** Every group of the account, as path → id. */
  const groupsOf = async (userId: string): Promise<Map<string, string>> => {
    const groups = new Map<string, string>();
    for (let first = 0; ; first += PAGE) {
      const page = await call('read an account’s groups', () => admin.users.listGroups({ id: userId, first, max: PAGE, briefRepresentation: true }));
      for (const group of page) if (group.path && group.id) groups.set(group.path, group.id);
      if (page.length < PAGE) return groups;
    }
  };

  // ---- accounts

  const account = async (user: UserRepresentation): Promise<IdentityAccount> => {
    const id = user.id ?? '';
    const groups = [...(await groupsOf(id)).keys()].filter(isManagedGroup).sort();
    return toAccount(user, groups);
  };

  const get = async (id: string): Promise<IdentityAccount | undefined> => {
    const user = await call('read an account', () => admin.users.findOne({ id }));
    return user ? account(user) : undefined;
  };

  const provider: IdentityProvider = {
    name: 'keycloak',

    async check(): Promise<Health> {
      try {
        const token = await tokens.refresh();
        const roles = realmManagementRoles(token);
        if (!roles.includes(REQUIRED_ROLE)) {
          return { ok: false, reason: `${where}: client ${clientId}'s service account lacks the realm-management role ${REQUIRED_ROLE}` };
        }
        await call('list users', () => admin.users.find({ max: 1, briefRepresentation: true }));
        const profile = await call('read the user profile', () => admin.users.getProfile({ realm }));
        const policy: string = profile.unmanagedAttributePolicy ?? 'DISABLED';
        // ADMIN_EDIT only: ENABLED keeps the attributes but lets every account holder edit their own,
        // so anyone could write usher_roles (or the marker usher_user_uid) into their own tokens.
        if (policy !== 'ADMIN_EDIT') {
          const why = policy === 'ENABLED' ? 'lets people edit the attributes Usher stores on their own accounts' : 'drops the attributes Usher stores';
          return {
            ok: false,
            reason: `${where}: the realm's user profile ${why} (${USER_UID_ATTRIBUTE}, ${ROLES_ATTRIBUTE}): set its unmanaged attribute policy to ADMIN_EDIT (it is ${policy})`,
          };
        }
        return { ok: true };
      } catch (err) {
        return { ok: false, reason: err instanceof Error ? err.message : String(err) };
      }
    },

    async findByEmail(email) {
      const wanted = email.toLowerCase();
      const users = await call('find accounts by email', () => admin.users.find({ email, exact: true, briefRepresentation: false }));
      const user = users.find((u) => u.email?.toLowerCase() === wanted);
      return user ? account(user) : undefined;
    },

    get,

    async create(newAccount) {
      const groups = checkedGroups(newAccount.groups, where);
      let credentials;
      try {
        credentials = newAccount.passwordHash !== undefined ? [argon2idCredential(newAccount.passwordHash)] : [];
      } catch (err) {
        if (err instanceof UnsupportedHashError) throw new KeycloakError(`${where}: cannot import the password of ${newAccount.email}: ${err.message}`, false);
        throw err;
      }
      const representation: UserRepresentation = {
        username: newAccount.email,
        email: newAccount.email,
        emailVerified: newAccount.emailVerified,
        enabled: true,
        ...(newAccount.firstName ? { firstName: newAccount.firstName } : {}),
        ...(newAccount.lastName ? { lastName: newAccount.lastName } : {}),
        attributes: { [USER_UID_ATTRIBUTE]: [newAccount.usherUserUid], [ROLES_ATTRIBUTE]: [...newAccount.roles] },
        credentials,
      };
      let id: string;
      try {
        ({ id } = await call(`create the account ${newAccount.email}`, () => admin.users.create(representation)));
      } catch (err) {
        if (err instanceof KeycloakError && err.status === 409) {
          throw new KeycloakError(
            `${where}: an account with the username or email ${newAccount.email} exists already (made meanwhile by someone else?): ${err.detail ?? 'conflict'}`,
            false,
            409,
          );
        }
        throw err;
      }
      log.info({ account: id, email: newAccount.email }, 'keycloak: created account');
      const made = await call('read the new account', () => admin.users.findOne({ id }));
      if (!made) throw new KeycloakError(`${where}: the account ${newAccount.email} (${id}) vanished right after it was created`, true);
      if (firstValue(made.attributes, USER_UID_ATTRIBUTE) !== newAccount.usherUserUid) {
        // Without its mark Usher could never tell the account is its own: take it back.
        await call(`delete the unmarked account ${newAccount.email}`, () => admin.users.del({ id }));
        throw new KeycloakError(
          `${where}: the realm dropped the attribute ${USER_UID_ATTRIBUTE} of the new account ${newAccount.email} (deleted again): set the realm's unmanaged attribute policy to ADMIN_EDIT`,
          false,
        );
      }
      // By id, after creation: `groups` in the create payload needs the groups to exist and says nothing when one is missing.
      for (const path of groups) await join(id, path);
      return toAccount(made, [...groups].sort());
    },

    async setAccess(id, wantedGroups, wantedRoles) {
      const groups = checkedGroups(wantedGroups, where);
      const user = await call('read an account', () => admin.users.findOne({ id }));
      if (!user) throw new KeycloakError(`${where}: there is no account ${id}`, false, 404);
      const current = await groupsOf(id);
      const joined: string[] = [];
      const left: string[] = [];
      for (const path of groups) {
        if (current.has(path)) continue;
        await join(id, path);
        joined.push(path);
      }
      for (const [path, groupId] of current) {
        if (!isManagedGroup(path) || groups.has(path)) continue;
        try {
          await call(`remove an account from group ${path}`, () => admin.users.delFromGroup({ id, groupId }));
        } catch (err) {
          if (!(err instanceof KeycloakError && err.status === 404)) throw err; // left or deleted meanwhile
          forgetGroup(path);
        }
        left.push(path);
      }
      const roles = [...new Set(wantedRoles)];
      const currentRoles = stringValues(user.attributes, ROLES_ATTRIBUTE);
      if (!sameSet(roles, currentRoles)) {
        // With `attributes`, Keycloak 26 replaces all of them, email, firstName and lastName
        // included: send back what is there, with usher_roles changed.
        const attributes: Record<string, unknown> = { ...user.attributes, [ROLES_ATTRIBUTE]: roles };
        await call('update an account’s roles', () =>
          admin.users.update(
            { id },
            {
              username: user.username,
              email: user.email,
              firstName: user.firstName,
              lastName: user.lastName,
              attributes,
            },
          ),
        );
      }
      if (joined.length || left.length || !sameSet(roles, currentRoles)) log.info({ account: id, joined, left, roles }, 'keycloak: updated access');
    },

    async setEnabled(id, enabled) {
      try {
        // Without `attributes` Keycloak changes only what is sent.
        await call(enabled ? 'enable an account' : 'disable an account', () => admin.users.update({ id }, { enabled }));
      } catch (err) {
        // A gone account is as disabled as it gets.
        if (!enabled && err instanceof KeycloakError && err.status === 404) return;
        throw err;
      }
    },

    async remove(id) {
      try {
        await call('delete an account', () => admin.users.del({ id }));
      } catch (err) {
        if (err instanceof KeycloakError && err.status === 404) return;
        throw err;
      }
    },
  };
  return provider;
}

// ---- the client-credentials token

class ClientCredentials {
  readonly #opts: { base: string; realm: string; clientId: string; clientSecret: string; timeoutMs: number; where: string };
  #token: { value: string; renewAt: number } | undefined;
  #pending: Promise<string> | undefined;

  constructor(opts: { base: string; realm: string; clientId: string; clientSecret: string; timeoutMs: number; where: string }) {
    this.#opts = opts;
  }

  /** A valid access token: the cached one until shortly before it expires (Keycloak issues no refresh token for this grant). */
  get(): Promise<string> {
    if (this.#token && Date.now() < this.#token.renewAt) return Promise.resolve(this.#token.value);
    return this.refresh();
  }

  /** A new token, whatever is cached; concurrent callers share one request. */
  refresh(): Promise<string> {
    this.#pending ??= this.#fetch().finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  invalidate(): void {
    this.#token = undefined;
  }

  async #fetch(): Promise<string> {
    const { base, realm, clientId, clientSecret, timeoutMs, where } = this.#opts;
    const started = Date.now();
    let response: Response;
    try {
      response = await fetch(`${base}/realms/${encodeURIComponent(realm)}/protocol/openid-connect/token`, {
        method: 'POST',
        headers: {
          // RFC 6749 §2.3.1: both form-encoded, then Basic.
          authorization: `Basic ${Buffer.from(`${formEncode(clientId)}:${formEncode(clientSecret)}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      throw toProviderError(err, where, 'get a token', clientId);
    }
    const text = await response.text();
    if (!response.ok) {
      const body = parseJson(text);
      const error = typeof body?.error === 'string' ? body.error : undefined;
      const description = typeof body?.error_description === 'string' ? body.error_description : undefined;
      const said = [error, description].filter(Boolean).join(': ');
      if (response.status === 401 || error === 'invalid_client' || error === 'unauthorized_client') {
        // Keycloak says unauthorized_client both for a wrong secret and for a client without a service account.
        const hint = /service account/i.test(description ?? '')
          ? `enable the service account (client credentials) of client ${clientId}`
          : 'check usher.identity.keycloak.clientSecret (and clientId)';
        throw new KeycloakError(`${where}: client ${clientId} was refused (${response.status}${said ? ` ${said}` : ''}): ${hint}`, false, response.status);
      }
      if (response.status === 404) throw new KeycloakError(`${where}: no such realm (404): check usher.identity.keycloak.realm and url`, false, 404);
      const retryable = response.status >= 500 || response.status === 429;
      throw new KeycloakError(`${where}: the token request failed (${response.status}${said ? ` ${said}` : ''})`, retryable, response.status);
    }
    const body = parseJson(text);
    const value = body?.access_token;
    if (typeof value !== 'string') throw new KeycloakError(`${where}: the token response had no access_token`, true);
    const expiresIn = typeof body?.expires_in === 'number' ? body.expires_in : 60;
    this.#token = { value, renewAt: started + Math.max(expiresIn * 1000 - TOKEN_MARGIN_MS, (expiresIn * 1000) / 2) };
    return value;
  }
}

// ---- helpers

/** The realm-management roles an access token carries (resource_access), without verifying it: Keycloak just issued it to us. */
function realmManagementRoles(token: string): string[] {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      resource_access?: Record<string, { roles?: string[] }>;
    };
    return payload.resource_access?.['realm-management']?.roles ?? [];
  } catch {
    return [];
  }
}

function toAccount(user: UserRepresentation, groups: string[]): IdentityAccount {
  const uid = firstValue(user.attributes, USER_UID_ATTRIBUTE);
  return {
    id: user.id ?? '',
    username: user.username ?? '',
    email: user.email ?? '',
    enabled: user.enabled ?? false,
    emailVerified: user.emailVerified ?? false,
    ...(uid !== undefined ? { usherUserUid: uid } : {}),
    groups,
    roles: stringValues(user.attributes, ROLES_ATTRIBUTE),
  };
}

function stringValues(attributes: Record<string, unknown> | undefined, name: string): string[] {
  const value = attributes?.[name];
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  return typeof value === 'string' ? [value] : [];
}

function firstValue(attributes: Record<string, unknown> | undefined, name: string): string | undefined {
  return stringValues(attributes, name)[0];
}

function sameSet(a: string[], b: string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((x) => right.has(x));
}

/** The wanted groups, each a full path inside Usher's trees (the controller's promise; checked, since a typo would touch other groups). */
function checkedGroups(paths: string[], where: string): Set<string> {
  for (const path of paths) {
    if (!/^(\/[^/]+)+$/.test(path) || !isManagedGroup(path)) {
      throw new KeycloakError(`${where}: ${JSON.stringify(path)} is not a group path under ${MANAGED_GROUP_ROOTS.join(' or ')}`, false);
    }
  }
  return new Set(paths);
}

function formEncode(value: string): string {
  return encodeURIComponent(value)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replaceAll('%20', '+');
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return value && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** An IdentityProviderError with the HTTP status (and Keycloak's own words) behind it, for the adapter's own decisions. */
export class KeycloakError extends IdentityProviderError {
  readonly status: number | undefined;
  readonly detail: string | undefined;

  constructor(message: string, retryable: boolean, status?: number, detail?: string) {
    super(message, retryable);
    this.status = status;
    this.detail = detail;
  }
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** What went wrong, as an IdentityProviderError: unreachable, timeouts and 5xx retryable; 4xx (misconfiguration) and TLS trust not. */
function toProviderError(err: unknown, where: string, what: string, clientId: string): IdentityProviderError {
  if (err instanceof IdentityProviderError) return err;
  if (err instanceof NetworkError) {
    const code = err.response.status;
    const detail = describe(err.responseData) ?? err.message;
    if (code === 401)
      return new KeycloakError(`${where}: client ${clientId} was refused (401) to ${what}: check usher.identity.keycloak.clientSecret`, false, code, detail);
    if (code === 403) {
      return new KeycloakError(
        `${where}: client ${clientId} may not ${what} (403): give its service account the realm-management role ${REQUIRED_ROLE}`,
        false,
        code,
        detail,
      );
    }
    const retryable = code >= 500 || code === 429 || code === 408;
    return new KeycloakError(`${where}: could not ${what} (${code}${detail ? ` ${detail}` : ''})`, retryable, code, detail);
  }
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new KeycloakError(`${where}: timed out trying to ${what}`, true);
  }
  if (err instanceof TypeError) {
    // fetch failed: the reason is in the cause (ECONNREFUSED, ENOTFOUND, a certificate the CA does not vouch for).
    const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
    const code = typeof cause?.code === 'string' ? cause.code : undefined;
    const message = typeof cause?.message === 'string' ? cause.message : err.message;
    if (code && TLS_CODES.has(code)) {
      return new KeycloakError(`${where}: its TLS certificate is not trusted (${code}): set usher.identity.keycloak.caFile to the CA that signed it`, false);
    }
    return new KeycloakError(`${where}: unreachable: ${code ?? message}`, true);
  }
  return new KeycloakError(`${where}: could not ${what}: ${err instanceof Error ? err.message : String(err)}`, true);
}

function describe(data: unknown): string | undefined {
  if (typeof data === 'string') return data || undefined;
  if (data && typeof data === 'object') {
    const d = data as Record<string, unknown>;
    for (const key of ['errorMessage', 'error_description', 'error']) if (typeof d[key] === 'string') return d[key];
  }
  return undefined;
}

/**
 * Makes Node's own TLS clients (fetch among them, which the admin client uses) trust
 * `pem` besides the default CAs. Process-wide, as NODE_EXTRA_CA_CERTS would be, but
 * without a restart or a new dependency (Node 24.5+). Adding the same CA twice is a no-op.
 */
function trustCa(pem: string): void {
  const current = tls.getCACertificates('default');
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new Error('keycloak: caFile holds no PEM certificate');
  const normal = (c: string): string => c.replace(/\s+/g, '');
  const known = new Set(current.map(normal));
  const missing = certs.filter((c) => !known.has(normal(c)));
  if (missing.length) tls.setDefaultCACertificates([...current, ...missing.map((c) => `${c}\n`)]);
}
