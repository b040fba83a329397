// What enqueues what, in one place: the UserInvitation controller's
// SetupWithManager (controller-runtime's For, Owns and Watches). Every event
// maps to the invitations it may change; the work queue collapses repeats, and
// a reconcile reads the world from the caches, so an extra key costs a no-op.
//
//   UserInvitation added or changed   → itself                          (For)
//   UserInvitation deleted            → orphan-record cleanup (its records live in Usher's namespace)
//   record Secret, any event          → the invitation it is bound to   (Watches, by the record's payload)
//   link Secret, any event            → its owner                       (Owns)
//   Namespace added, labels changed   → the invitations in it           (Watches: the tenant label decides what they may do)
//   User, any event                   → the invitations it has a membership from
//                                       (a deleted User behind a UserCreated invitation is made again at once)
//
// and, with usher.identity, the identity controller's (setUpUserWatches):
//   User added or changed             → itself (its account at the identity provider)
//
// and, with usher.rbac, the RBAC controller's (setUpRbacWatches):
//   User added or changed             → itself (its memberships, its account's username, a deletion)
//   Namespace added, relabelled, gone → the Users with memberships it may concern
//   UserInvitation added, changed, deleted → its User (status.user): only what an accepted invitation grants is bound
//   Usher's RoleBinding or ClusterRoleBinding changed or deleted → the Users that own it
import type { V1ClusterRoleBinding, V1Namespace, V1RoleBinding, V1Secret } from '@kubernetes/client-node';
import type { User, UserInvitation } from '../api/types.ts';
import { recordFromSecret } from '../invitation/record.ts';
import type { Informer } from '../runtime/informer.ts';
import type { WrittenKind } from './own-writes.ts';

/** The informers whose events enqueue invitations. */
export interface WatchedInformers {
  invitations: Informer<UserInvitation>;
  /** Invitation records (Usher's namespace). */
  secrets: Informer<V1Secret>;
  /** Link Secrets beside the invitations (linkDisclosure: Secret only). */
  linkSecrets?: Informer<V1Secret> | undefined;
  namespaces: Informer<V1Namespace>;
  users: Informer<User>;
}

export interface WatchTargets {
  /** An invitation needs a look: it changed, or something it depends on did. */
  enqueue(namespace: string, name: string): void;
  /** An invitation is gone: its records must go too. */
  invitationDeleted(uid: string): void;
  /**
   * An invitation or record event, instead of enqueue(): the controller's EchoFilter
   * (own-writes.ts) drops those that only show what the invitation controller wrote.
   */
  changed?(kind: WrittenKind, objectKey: string, resourceVersion: string | undefined, invitation: InvitationRef): void;
}

interface InvitationRef {
  namespace: string;
  name: string;
}

export function setUpWatches(informers: WatchedInformers, targets: WatchTargets): void {
  const enqueueAll = (refs: Iterable<InvitationRef>): void => {
    for (const ref of refs) targets.enqueue(ref.namespace, ref.name);
  };

  for (const type of ['add', 'update'] as const) {
    informers.invitations.on(type, (invitation) => {
      const { namespace = '', name, resourceVersion } = invitation.metadata;
      if (targets.changed) targets.changed('invitation', `${namespace}/${name}`, resourceVersion, { namespace, name });
      else targets.enqueue(namespace, name);
    });
  }
  informers.invitations.on('delete', (invitation) => {
    targets.invitationDeleted(invitation.metadata.uid ?? '');
  });

  for (const type of ['add', 'update', 'delete'] as const) {
    informers.secrets.on(type, (secret) => {
      const { namespace = '', name = '', resourceVersion } = secret.metadata ?? {};
      if (!targets.changed || type === 'delete') enqueueAll(invitationOfRecord(secret));
      else for (const ref of invitationOfRecord(secret)) targets.changed('record', `${namespace}/${name}`, resourceVersion, ref);
    });
    informers.linkSecrets?.on(type, (secret) => {
      enqueueAll(ownerOfLinkSecret(secret));
    });
    informers.users.on(type, (user, old?: User) => {
      enqueueAll(invitationsOfUser(user, old));
    });
  }

  const enqueueNamespace = (namespace: V1Namespace): void => {
    for (const invitation of informers.invitations.list(namespace.metadata?.name ?? ''))
      targets.enqueue(invitation.metadata.namespace ?? '', invitation.metadata.name);
  };
  informers.namespaces.on('add', enqueueNamespace);
  informers.namespaces.on('update', (namespace, old) => {
    if (labelsChanged(namespace, old)) enqueueNamespace(namespace);
  });
}

/**
 * The identity controller's watches (usher.identity): a User, added or changed
 * (a membership, a deletion under way, its finalizers or its acceptance marks),
 * is reconciled with its account. Updates that change none of that (its own
 * status writes, a relist's unchanged copy) are not: each reconcile asks the
 * identity provider, which should not pay for Usher's own echoes.
 */
export function setUpUserWatches(informers: Pick<WatchedInformers, 'users'>, enqueue: (name: string) => void): void {
  informers.users.on('add', (user) => {
    enqueue(user.metadata.name);
  });
  informers.users.on('update', (user, old?: User) => {
    if (!old || accountRelevantChange(user, old)) enqueue(user.metadata.name);
  });
}

/** The RBAC controller's watches (usher.rbac); keys are User names. */
export function setUpRbacWatches(
  informers: Pick<WatchedInformers, 'users' | 'namespaces' | 'invitations'> & {
    roleBindings: Informer<V1RoleBinding>;
    clusterRoleBindings: Informer<V1ClusterRoleBinding>;
  },
  tenantLabel: string,
  enqueue: (userName: string) => void,
): void {
  informers.users.on('add', (user) => {
    enqueue(user.metadata.name);
  });
  informers.users.on('update', (user, old?: User) => {
    if (!old || rbacRelevantChange(user, old)) enqueue(user.metadata.name);
  });
  const enqueueConcerned = (namespace: V1Namespace, old?: V1Namespace): void => {
    const name = namespace.metadata?.name ?? '';
    const tenants = new Set([namespace, old].map((n) => n?.metadata?.labels?.[tenantLabel]).filter((t): t is string => t !== undefined));
    for (const user of informers.users.list()) if (concernsUser(user, name, tenants)) enqueue(user.metadata.name);
  };
  informers.namespaces.on('add', (namespace) => {
    enqueueConcerned(namespace);
  });
  informers.namespaces.on('update', (namespace, old) => {
    if (labelsChanged(namespace, old) || namespace.metadata?.deletionTimestamp !== old.metadata?.deletionTimestamp) enqueueConcerned(namespace, old);
  });
  informers.namespaces.on('delete', (namespace) => {
    enqueueConcerned(namespace);
  });
  for (const type of ['add', 'update', 'delete'] as const) {
    informers.invitations.on(type, (invitation, old?: UserInvitation) => {
      for (const user of new Set([invitation.status?.user, old?.status?.user])) if (user) enqueue(user);
    });
  }
  for (const bindings of [informers.roleBindings, informers.clusterRoleBindings] as Informer<V1RoleBinding>[]) {
    // Drift: someone edited or deleted one of Usher's bindings; its owners put it back (or finish removing it).
    for (const type of ['update', 'delete'] as const) {
      bindings.on(type, (binding) => {
        for (const owner of binding.metadata?.ownerReferences ?? []) if (owner.kind === 'User') enqueue(owner.name);
      });
    }
  }
}

/** Whether an update of a User may change its bindings: memberships, a deletion, its account's username. */
export function rbacRelevantChange(user: User, old: User): boolean {
  const key = (u: User): string =>
    JSON.stringify([u.metadata.uid, u.metadata.deletionTimestamp, u.spec.email, u.spec.memberships, u.status?.identity?.username]);
  return key(user) !== key(old);
}

/** Whether a namespace named `namespace`, of these tenants (its label before and after), may change what the User is bound to. */
function concernsUser(user: User, namespace: string, tenants: ReadonlySet<string>): boolean {
  return (user.spec.memberships ?? []).some(
    (m) => (m.scope === 'Tenant' && m.tenant !== undefined && tenants.has(m.tenant)) || (m.roles ?? []).some((r) => r.namespaces?.includes(namespace)),
  );
}

/** Whether an update of a User may change what its account should be. */
export function accountRelevantChange(user: User, old: User): boolean {
  const key = (u: User): string =>
    JSON.stringify([u.metadata.generation, u.metadata.deletionTimestamp, u.metadata.finalizers, u.metadata.annotations, u.metadata.uid, u.spec]);
  return key(user) !== key(old);
}

/** The invitation a record Secret is bound to (none for a Secret that is no record). */
export function invitationOfRecord(secret: V1Secret): InvitationRef[] {
  const record = recordFromSecret(secret);
  return record ? [{ namespace: record.invitationNamespace, name: record.invitationName }] : [];
}

/** The invitation that owns a link Secret. */
export function ownerOfLinkSecret(secret: V1Secret): InvitationRef[] {
  const owner = secret.metadata?.ownerReferences?.find((o) => o.kind === 'UserInvitation');
  return owner && secret.metadata?.namespace ? [{ namespace: secret.metadata.namespace, name: owner.name }] : [];
}

/** The invitations a User has memberships from, before and after a change (a removed membership matters too). */
export function invitationsOfUser(user: User, old?: User): InvitationRef[] {
  const refs = new Map<string, InvitationRef>();
  for (const u of old ? [user, old] : [user]) {
    for (const membership of u.spec.memberships ?? []) {
      const from = membership.invitation;
      if (from?.namespace && from.name) refs.set(`${from.namespace}/${from.name}`, { namespace: from.namespace, name: from.name });
    }
  }
  return [...refs.values()];
}

/** Whether a namespace's labels differ between two versions (order aside). */
export function labelsChanged(namespace: V1Namespace, old: V1Namespace): boolean {
  const a = namespace.metadata?.labels ?? {};
  const b = old.metadata?.labels ?? {};
  const keys = Object.keys(a);
  return keys.length !== Object.keys(b).length || keys.some((key) => a[key] !== b[key] || !(key in b));
}
