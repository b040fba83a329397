// The identity provider port: what Usher's identity controller asks of the
// system that holds people's accounts (Keycloak first: keycloak.ts). The
// controller depends on this interface only; tests use an in-memory fake.

/** An account at the identity provider, as Usher sees it. */
export interface IdentityAccount {
  id: string;
  username: string;
  email: string;
  enabled: boolean;
  /** Whether the realm holds the account's email as verified (its holder proved the mailbox). */
  emailVerified: boolean;
  /** The uid of the Usher User that created this account (attribute usher_user_uid); absent for accounts anyone else made. */
  usherUserUid?: string;
  /** Paths of the account's groups under the trees Usher manages (/tenants/..., /instance/...). */
  groups: string[];
  /** The account's usher_roles attribute values. */
  roles: string[];
}

export interface NewAccount {
  /** Already normalised; also the username. */
  email: string;
  firstName?: string;
  lastName?: string;
  emailVerified: boolean;
  usherUserUid: string;
  /** Usher's argon2id PHC string, imported as the password credential; absent for accounts that sign in through SSO only. */
  passwordHash?: string;
  /** Full paths, e.g. /tenants/acme, /tenants/acme/developers, /instance, /instance/ops. */
  groups: string[];
  roles: string[];
}

export type Health = { ok: true } | { ok: false; reason: string };

export interface IdentityProvider {
  /** 'keycloak' */
  readonly name: string;
  /** Whether the provider answers and Usher's client may do its job (for /readyz), with a reason naming what is wrong. */
  check(): Promise<Health>;
  findByEmail(email: string): Promise<IdentityAccount | undefined>;
  get(id: string): Promise<IdentityAccount | undefined>;
  create(account: NewAccount): Promise<IdentityAccount>;
  /** Makes the account's groups under Usher's trees and its usher_roles exactly these, creating groups when missing; groups outside /tenants and /instance and other attributes are left alone. */
  setAccess(id: string, groups: string[], roles: string[]): Promise<void>;
  /** Disabling an account that is gone already is no error (a deleted User's finalizer must not wedge on it); enabling one is. */
  setEnabled(id: string, enabled: boolean): Promise<void>;
  /** Removing an account that is gone already is no error. */
  remove(id: string): Promise<void>;
}

/** A provider error worth retrying (unreachable, 5xx, timeout) vs. one that is not (4xx meaning misconfiguration). */
export class IdentityProviderError extends Error {
  override name = 'IdentityProviderError';
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean) {
    super(message);
    this.retryable = retryable;
  }
}
