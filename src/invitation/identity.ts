// A User's account at the identity provider (usher.identity), decided without
// I/O: which groups and roles its memberships become there, and what the
// identity controller must do to make the account match the User.
//
// The rules (docs/adr/0006):
//   - A tenant membership is the group /tenants/<tenant>, each invited group
//     /tenants/<tenant>/<group>; the instance scope is /instance and
//     /instance/<group>. Usher owns those two trees and nothing outside them.
//   - Roles are values of the account's usher_roles attribute:
//     <tenant>/<role>, or <tenant>/<role>@<namespace> once per namespace the
//     role is limited to; * stands for the instance scope.
//   - Usher creates an account only when none exists for the address, and
//     marks it with the User's uid. An account it did not create is joined
//     (groups and roles only) only when the person proved it is theirs by
//     signing in to it (an External User: accepted through SSO); never
//     otherwise, and its password, names and other groups are never touched.
//   - Deleting the User takes the Usher groups and roles off the account;
//     an account Usher created is then disabled or deleted (onUserDelete).
import type { Condition, Membership, User, UserIdentityStatus, UserStatus } from '../api/types.ts';
import type { IdentityConfig } from '../config/types.ts';
import type { DesiredCondition } from './conditions.ts';
import { withOwnedCondition } from './user-status.ts';

/** Held by a User whose account Usher may still have to release at the identity provider. */
export const IDENTITY_FINALIZER = 'usher.dev/identity-account';
export const PROVISIONED = 'Provisioned';
/** The group trees Usher manages; groups elsewhere belong to whoever made them. */
export const MANAGED_GROUP_ROOTS = ['/tenants', '/instance'] as const;
/** Roles of the instance scope are written with this in place of a tenant. */
export const INSTANCE_ROLE_SCOPE = '*';

/** What the identity provider keeps that Usher manages. */
export interface Access {
  /** Sorted group paths. */
  groups: string[];
  /** Sorted usher_roles values. */
  roles: string[];
}

/** The groups and roles a User's memberships become at the identity provider. */
export function accessOf(memberships: readonly Membership[] | undefined): Access {
  const groups = new Set<string>();
  const roles = new Set<string>();
  for (const m of memberships ?? []) {
    const root = m.scope === 'Instance' ? '/instance' : `/tenants/${m.tenant ?? ''}`;
    const scope = m.scope === 'Instance' ? INSTANCE_ROLE_SCOPE : (m.tenant ?? '');
    groups.add(root);
    for (const group of m.groups ?? []) groups.add(`${root}/${group}`);
    for (const role of m.roles ?? []) {
      const namespaces = role.namespaces ?? [];
      if (namespaces.length === 0) roles.add(`${scope}/${role.name}`);
      for (const namespace of namespaces) roles.add(`${scope}/${role.name}@${namespace}`);
    }
  }
  return { groups: [...groups].sort(), roles: [...roles].sort() };
}

/** Whether a group path is in a tree Usher manages. */
export function isManagedGroup(path: string): boolean {
  return MANAGED_GROUP_ROOTS.some((root) => path === root || path.startsWith(`${root}/`));
}

/** The account as the decision needs it (the identity adapter's IdentityAccount fits). */
export interface AccountView {
  id: string;
  username: string;
  /** As the provider stores it (Keycloak lower-cases every letter). */
  email: string;
  enabled: boolean;
  /** Whether the provider holds the account's email as verified by its holder. */
  emailVerified: boolean;
  /** The uid of the User that made the account; absent when anyone else made it. */
  usherUserUid?: string;
  groups: readonly string[];
  roles: readonly string[];
}

export interface AccountObserved {
  user: User;
  /** The account with the User's address, if any. */
  account: AccountView | undefined;
  /** Whether the User's password hash can be read (only asked for Password Users). */
  hasPasswordHash: boolean;
  /** An acceptance is still writing this User (provisional, its record not used yet): it may still be rolled back. */
  accepting: boolean;
  onUserDelete: IdentityConfig['onUserDelete'];
}

export type AccountStep =
  | { kind: 'addFinalizer' }
  | { kind: 'create'; withPassword: boolean; access: Access }
  | { kind: 'setAccess'; access: Access }
  | { kind: 'disable' }
  | { kind: 'delete' }
  | { kind: 'removeFinalizer' };

export interface AccountPlan {
  steps: AccountStep[];
  /** The Provisioned condition once the steps are done; undefined while the User is being deleted. */
  provisioned?: DesiredCondition;
  /** The account the status names once the steps are done ('created' when a create step will make it). */
  account?: { managed: boolean } & Partial<Pick<AccountView, 'id' | 'username'>>;
  /** Look again after this long: a wait that no watched event ends. */
  requeueAfterMs?: number;
}

/** How long to wait for an acceptance in progress or a password hash still being written. */
export const WAIT_MS = 2_000;
const NO_ACCESS: Access = { groups: [], roles: [] };

/** The steps that make the account match the User, and the condition that says where it stands. */
export function planAccount(observed: AccountObserved): AccountPlan {
  const { user } = observed;
  const uid = user.metadata.uid ?? '';
  const holdsFinalizer = user.metadata.finalizers?.includes(IDENTITY_FINALIZER) ?? false;
  // The provider compares addresses with every letter lower-cased, Usher with A-Z only (Élodie@ and élodie@
  // are two people to Usher): an account whose stored address is not exactly this User's is someone else's.
  const account = observed.account && observed.account.email === user.spec.email ? observed.account : undefined;
  const foreign = observed.account !== undefined && account === undefined;
  const managed = account !== undefined && account.usherUserUid === uid;
  // Only an account this User made or joined is released when it goes (not one it was kept away from).
  const ours = account !== undefined && (managed || user.status?.identity?.id === account.id);

  if (user.metadata.deletionTimestamp) {
    if (!holdsFinalizer) return { steps: [] };
    const steps: AccountStep[] = [];
    if (account && ours) {
      if (managed && observed.onUserDelete === 'Delete') steps.push({ kind: 'delete' });
      else {
        if (hasManagedAccess(account)) steps.push({ kind: 'setAccess', access: NO_ACCESS });
        if (managed && account.enabled) steps.push({ kind: 'disable' });
      }
    }
    steps.push({ kind: 'removeFinalizer' });
    return { steps };
  }

  if (observed.accepting) {
    return { steps: [], provisioned: waiting('AcceptanceInProgress', 'The invitation is being accepted.'), requeueAfterMs: WAIT_MS };
  }

  const steps: AccountStep[] = holdsFinalizer ? [] : [{ kind: 'addFinalizer' }];
  const want = accessOf(user.spec.memberships);
  const password = user.spec.authentication === 'Password';

  if (foreign) return { steps, provisioned: accountExists(observed.account?.username ?? '') };

  if (!account) {
    if (password && !observed.hasPasswordHash) {
      return { steps, provisioned: waiting('WaitingForPassword', 'The password hash is not written yet.'), requeueAfterMs: WAIT_MS };
    }
    steps.push({ kind: 'create', withPassword: password, access: want });
    return { steps, provisioned: ready('Created', syncedMessage(true)), account: { managed: true } };
  }

  // Someone else's account is joined (groups and roles only) by an External User, who signed in through SSO
  // or was made directly by an admin, and only when the provider holds its address as verified by its holder:
  // an account made with that address by someone who does not own the mailbox gains nothing.
  if (!managed && (password || !account.emailVerified)) {
    // Not recorded in status.identity: the account is not this User's (it is neither released when the User
    // goes nor given this User's RoleBindings, docs/security.md attack 10).
    return { steps, provisioned: accountExists(account.username) };
  }

  if (!sameAccess(account, want)) steps.push({ kind: 'setAccess', access: want });
  return {
    steps,
    provisioned: ready(managed ? 'Created' : 'Joined', syncedMessage(managed)),
    account: { managed, id: account.id, username: account.username },
  };
}

/** The User's status once a plan's steps are done (conditions keep their transition times when unchanged). */
export function accountStatus(user: User, plan: AccountPlan, identity: UserIdentityStatus | undefined, now: Date): UserStatus {
  const generation = user.metadata.generation;
  const provisioned = plan.provisioned;
  const conditions: Condition[] = provisioned ? withOwnedCondition(user.status?.conditions, provisioned, generation, now) : (user.status?.conditions ?? []);
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    ...(identity ? { identity } : {}),
    conditions,
  };
}

/** The status after a step failed: Provisioned False with the provider's answer, the rest kept. */
export function failedStatus(user: User, reason: string, message: string, now: Date): UserStatus {
  const provisioned: DesiredCondition = { type: PROVISIONED, status: 'False', reason, message };
  return accountStatus(user, { steps: [], provisioned }, user.status?.identity, now);
}

function hasManagedAccess(account: AccountView): boolean {
  return account.groups.some(isManagedGroup) || account.roles.length > 0;
}

function sameAccess(account: AccountView, want: Access): boolean {
  const groups = account.groups.filter(isManagedGroup);
  return sameSet(groups, want.groups) && sameSet(account.roles, want.roles);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const set = new Set(a);
  return set.size === new Set(b).size && b.every((x) => set.has(x));
}

/** The same words whether the account was made in this reconcile or found in sync later: a status that does not change is not rewritten. */
function syncedMessage(managed: boolean): string {
  const which = managed ? 'The account Usher created' : 'The existing account the person signed in to';
  return `${which} has the User\u2019s groups and roles.`;
}

function accountExists(username: string): DesiredCondition {
  return {
    type: PROVISIONED,
    status: 'False',
    reason: 'AccountExists',
    message:
      `An account with this address (${username}) exists at the identity provider and Usher did not create it; Usher leaves it untouched. ` +
      'The person accepts by signing in to it through SSO (its address verified there); an admin may instead remove that account.',
  };
}

function ready(reason: string, message: string): DesiredCondition {
  return { type: PROVISIONED, status: 'True', reason, message };
}

function waiting(reason: string, message: string): DesiredCondition {
  return { type: PROVISIONED, status: 'False', reason, message };
}
