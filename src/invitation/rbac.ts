// From a User's memberships to the RBAC bindings Kubernetes enforces
// (usher.rbac; docs/adr/0008). Pure: the controller (src/controller/rbac-reconciler.ts)
// reads the User and the namespaces from its caches, calls projectUser, and
// makes the bindings it finds say so.
//
//   Tenant scope, role R mapped to ClusterRole C:
//     a RoleBinding to C in every namespace labelled with the tenant, or only in
//     R's listed namespaces, each of which must be labelled with that tenant
//     (another tenant's namespace, or one that does not exist, is not bound and is named).
//   Instance scope, role R mapped to C: a ClusterRoleBinding to C, or RoleBindings
//     in R's listed namespaces (those that exist).
//   Group G mapped (groupMap) to C: the same, for the Group subject the API
//     server sees (the token's group path, /tenants/<t>/<G> or /instance/<G>, with
//     the groups prefix). Such a binding is shared by every User holding G there.
//   A role or group with no mapping binds nothing; a role without one is named.
import type { Membership, User, UserInvitation } from '../api/types.ts';
import type { RbacConfig, UsherConfig } from '../config/types.ts';
import { normalizeEmail } from './email.ts';
import { forbiddenReason } from './rules.ts';
import type { DesiredCondition } from './conditions.ts';
import { createHash } from 'node:crypto';

export const BOUND = 'Bound';
/** On every binding Usher makes (with app.kubernetes.io/managed-by: usher). */
export const BINDING_KIND_LABEL = 'usher.dev/binding';
/** On a person's binding: the User it binds (its owner). */
export const BINDING_USER_LABEL = 'usher.dev/user';

export interface Subject {
  kind: 'User' | 'Group';
  name: string;
}

export interface DesiredBinding {
  kind: 'RoleBinding' | 'ClusterRoleBinding';
  /** RoleBindings only. */
  namespace?: string;
  name: string;
  clusterRole: string;
  subject: Subject;
  /** A Group binding: shared by every User holding that group (owned by all of them), not the User's alone. */
  shared: boolean;
}

export type ProjectionNote =
  | { kind: 'UnmappedRole'; role: string }
  /** A membership no accepted invitation grants (now): not bound. `pending`: its invitation is not Accepted yet. */
  | { kind: 'NotGranted'; from: string; why: string; pending: boolean }
  | { kind: 'NamespaceOutsideTenant'; role: string; namespace: string; tenant: string; actualTenant: string | undefined }
  | { kind: 'NamespaceNotFound'; role: string; namespace: string };

export interface Projection {
  bindings: DesiredBinding[];
  notes: ProjectionNote[];
  /** Set when nothing can be bound yet: the API server's name for the person is not known (no account yet). */
  waitingFor?: string;
}

/** The namespaces as the projection needs them: which exist, and the tenant each is labelled with. */
export interface NamespaceView {
  /** The tenant label's value of an existing namespace (undefined: no label); absent from the map: no such namespace. */
  tenantOf: ReadonlyMap<string, string | undefined>;
}

/** The name the API server gives this person (a User subject), or undefined while it is not known yet. */
export function usernameOf(user: User, rbac: RbacConfig): string | undefined {
  // Only an account the identity controller made or joined for this User (it records nothing else in
  // status.identity): an account it found with this address and left alone (AccountExists) is someone else's.
  const accountExists = user.status?.conditions?.some((c) => c.type === 'Provisioned' && c.reason === 'AccountExists') ?? false;
  if (rbac.username.from === 'IdentityUsername' && accountExists) return undefined;
  const name = rbac.username.from === 'Email' ? user.spec.email : user.status?.identity?.username;
  return name === undefined || name === '' ? undefined : `${rbac.username.prefix}${name}`;
}

export function projectUser(user: User, namespaces: NamespaceView, rbac: RbacConfig): Projection {
  const notes: ProjectionNote[] = [];
  const memberships = user.spec.memberships ?? [];
  const username = usernameOf(user, rbac);
  const bindings = new Map<string, DesiredBinding>();
  const add = (b: DesiredBinding): void => {
    bindings.set(bindingKey(b.kind, b.namespace, b.name), b);
  };
  const tenantNamespaces = (tenant: string): string[] => [...namespaces.tenantOf].filter(([, t]) => t === tenant).map(([name]) => name);

  for (const m of memberships) {
    const tenant = m.scope === 'Tenant' ? m.tenant : undefined;
    if (m.scope === 'Tenant' && !tenant) continue;
    for (const role of m.roles ?? []) {
      const clusterRole = rbac.roleMap[role.name];
      if (clusterRole === undefined) {
        notes.push({ kind: 'UnmappedRole', role: role.name });
        continue;
      }
      if (username === undefined) continue;
      const subject: Subject = { kind: 'User', name: username };
      const listed = role.namespaces ?? [];
      if (tenant !== undefined) {
        const where = listed.length === 0 ? tenantNamespaces(tenant) : listed.filter((ns) => inTenant(ns, role.name, tenant, namespaces, notes));
        for (const ns of where) add(personBinding(user, 'RoleBinding', clusterRole, subject, ns));
      } else if (listed.length === 0) {
        add(personBinding(user, 'ClusterRoleBinding', clusterRole, subject));
      } else {
        for (const ns of listed) {
          if (namespaces.tenantOf.has(ns)) add(personBinding(user, 'RoleBinding', clusterRole, subject, ns));
          else notes.push({ kind: 'NamespaceNotFound', role: role.name, namespace: ns });
        }
      }
    }
    for (const group of m.groups ?? []) {
      const clusterRole = rbac.groupMap[group];
      if (clusterRole === undefined) continue;
      const subject: Subject = { kind: 'Group', name: `${rbac.groups.prefix}${groupPath(m, group)}` };
      if (tenant === undefined) add(groupBinding('ClusterRoleBinding', clusterRole, subject, m, group));
      else for (const ns of tenantNamespaces(tenant)) add(groupBinding('RoleBinding', clusterRole, subject, m, group, ns));
    }
  }
  return {
    bindings: [...bindings.values()].sort(byKey),
    notes: dedupeNotes(notes),
    ...(username === undefined && memberships.length > 0 ? { waitingFor: 'its account at the identity provider (status.identity.username)' } : {}),
  };
}

/** A binding the API server would not take: a ClusterRole Usher may not bind, or a name someone else's object has. */
export interface RefusedBinding {
  binding: DesiredBinding;
  reason: 'BindForbidden' | 'NameTaken';
  message: string;
}

/**
 * The Bound condition for a projection and what applying it met: bindings the
 * API server refused, and errors a retry may clear (`retrying`, their messages).
 */
export function boundCondition(projection: Projection, refused: readonly RefusedBinding[], retrying: readonly string[] = []): DesiredCondition {
  const { bindings, notes } = projection;
  if (projection.waitingFor !== undefined) {
    return {
      type: BOUND,
      status: 'False',
      reason: 'WaitingForAccount',
      message: `The person's own RoleBindings wait for ${projection.waitingFor}; ${bindings.length} group binding${bindings.length === 1 ? '' : 's'} in place.`,
    };
  }
  const forbidden = refused.filter((r) => r.reason === 'BindForbidden');
  const first = forbidden[0] ?? refused[0];
  if (first) {
    const what = refused.length === 1 ? 'a binding' : `${refused.length} bindings`;
    const advice =
      first.reason === 'BindForbidden'
        ? 'Usher may bind only the ClusterRoles its chart grants `bind` on (the values of config.rbac.roleMap and groupMap).'
        : 'Delete or rename that object, or give the role another ClusterRole.';
    return {
      type: BOUND,
      status: 'False',
      reason: first.reason,
      message: `The API server refused ${what}, first ${describe(first.binding)}: ${first.message}. ${advice}`,
    };
  }
  const retry = retrying[0];
  if (retry !== undefined) return { type: BOUND, status: 'False', reason: 'Retrying', message: `Writing the RoleBindings failed, retrying: ${retry}` };
  const notGranted = notes.filter((n) => n.kind === 'NotGranted');
  if (notGranted.length > 0) {
    const pending = notGranted.every((n) => n.pending);
    const text = notGranted.map((n) => `the membership from ${n.from} (${n.why})`).join('; ');
    return {
      type: BOUND,
      status: 'False',
      reason: pending ? 'WaitingForInvitation' : 'NotGranted',
      message: `Not bound: ${text}. Usher binds only what an accepted invitation grants; ${bindings.length} binding${bindings.length === 1 ? '' : 's'} in place.`,
    };
  }
  const outside = notes.filter((n) => n.kind === 'NamespaceOutsideTenant' || n.kind === 'NamespaceNotFound');
  const unmapped = notes.filter((n) => n.kind === 'UnmappedRole').map((n) => n.role);
  const unmappedText = unmapped.length ? ` Roles with no ClusterRole in usher.rbac.roleMap (not bound): ${unmapped.join(', ')}.` : '';
  if (outside.length > 0) {
    return {
      type: BOUND,
      status: 'False',
      reason: outside.some((n) => n.kind === 'NamespaceOutsideTenant') ? 'NamespaceOutsideTenant' : 'NamespaceNotFound',
      message: `Not bound: ${outside.map(describeNote).join('; ')}.${unmappedText}`,
    };
  }
  const count = bindings.length;
  return {
    type: BOUND,
    status: 'True',
    reason: unmapped.length ? 'PartlyMapped' : 'Bound',
    message: `${count === 0 ? 'No bindings needed' : `${count} binding${count === 1 ? '' : 's'} in place`}.${unmappedText}`,
  };
}

/** What the RBAC controller looks an invitation up with: the cache's copy and its namespace's tenant label. */
export type InvitationLookup = (namespace: string, name: string) => { invitation: UserInvitation; namespaceTenant: string | undefined } | undefined;

/**
 * The part of each membership that an accepted invitation grants now: only
 * that is bound. A membership is text in a User, which Usher's page and
 * controller write; binding it only as far as a live invitation (same uid,
 * Accepted or UserCreated, for this address, scope and tenant, still allowed by
 * who-may-invite-whom) grants it means that whoever can write Users (a
 * compromised page) cannot hand out Kubernetes access by writing one.
 */
export function grantedMemberships(user: User, lookup: InvitationLookup, config: UsherConfig): { memberships: Membership[]; notes: ProjectionNote[] } {
  const memberships: Membership[] = [];
  const notes: ProjectionNote[] = [];
  for (const m of user.spec.memberships ?? []) {
    const ref = m.invitation;
    const from = ref ? `${ref.namespace}/${ref.name}` : '(no invitation)';
    const found = ref ? lookup(ref.namespace, ref.name) : undefined;
    const invitation = found?.invitation;
    if (!ref || !invitation || invitation.metadata.uid !== ref.uid) {
      notes.push({ kind: 'NotGranted', from, why: 'no such invitation', pending: false });
      continue;
    }
    const phase = invitation.status?.phase;
    if (phase !== 'Accepted' && phase !== 'UserCreated') {
      notes.push({
        kind: 'NotGranted',
        from,
        why: `the invitation is ${phase ?? 'new'}, not Accepted`,
        pending: phase === 'Pending' || phase === 'Sent' || phase === undefined,
      });
      continue;
    }
    const { spec } = invitation;
    const forbidden = forbiddenReason(invitation, found.namespaceTenant, config);
    const mismatch =
      normalizeEmail(spec.email) !== normalizeEmail(user.spec.email)
        ? 'it is for another address'
        : (spec.scope ?? 'Tenant') !== m.scope || (m.scope === 'Tenant' && spec.tenant !== m.tenant)
          ? 'it grants another scope or tenant'
          : forbidden;
    if (mismatch !== undefined) {
      notes.push({ kind: 'NotGranted', from, why: mismatch, pending: false });
      continue;
    }
    // Only the groups and roles the invitation grants now (an edit reaches the User a moment later).
    const sameRole = (a: { name: string; namespaces?: string[] }, b: { name: string; namespaces?: string[] }): boolean =>
      a.name === b.name && JSON.stringify([...(a.namespaces ?? [])].sort()) === JSON.stringify([...(b.namespaces ?? [])].sort());
    memberships.push({
      ...m,
      groups: (m.groups ?? []).filter((g) => spec.groups?.includes(g)),
      roles: (m.roles ?? []).filter((r) => spec.roles?.some((granted) => sameRole(r, granted))),
    });
  }
  return { memberships, notes };
}

export function describe(b: DesiredBinding): string {
  const where = b.kind === 'RoleBinding' ? `in namespace ${b.namespace ?? ''}` : 'cluster-wide';
  return `${b.kind} ${b.name} (${b.subject.kind} ${b.subject.name} → ClusterRole ${b.clusterRole}, ${where})`;
}

function describeNote(n: Extract<ProjectionNote, { kind: 'NamespaceOutsideTenant' | 'NamespaceNotFound' }>): string {
  if (n.kind === 'NamespaceNotFound') return `role ${n.role} lists namespace ${n.namespace}, which does not exist`;
  const actual = n.actualTenant === undefined ? 'belongs to no tenant' : `belongs to tenant ${n.actualTenant}`;
  return `role ${n.role} lists namespace ${n.namespace}, which ${actual}, not ${n.tenant}`;
}

function inTenant(ns: string, role: string, tenant: string, namespaces: NamespaceView, notes: ProjectionNote[]): boolean {
  if (!namespaces.tenantOf.has(ns)) {
    notes.push({ kind: 'NamespaceNotFound', role, namespace: ns });
    return false;
  }
  const actualTenant = namespaces.tenantOf.get(ns);
  if (actualTenant === tenant) return true;
  notes.push({ kind: 'NamespaceOutsideTenant', role, namespace: ns, tenant, actualTenant });
  return false;
}

/** The group's path in the token, as the identity provider names it (src/invitation/identity.ts accessOf). */
function groupPath(m: Membership, group: string): string {
  return m.scope === 'Instance' ? `/instance/${group}` : `/tenants/${m.tenant ?? ''}/${group}`;
}

function personBinding(user: User, kind: DesiredBinding['kind'], clusterRole: string, subject: Subject, namespace?: string): DesiredBinding {
  return {
    kind,
    ...(namespace !== undefined ? { namespace } : {}),
    name: bindingName(`usher:${user.metadata.name}:${clusterRole}`),
    clusterRole,
    subject,
    shared: false,
  };
}

function groupBinding(kind: DesiredBinding['kind'], clusterRole: string, subject: Subject, m: Membership, group: string, namespace?: string): DesiredBinding {
  const where = m.scope === 'Instance' ? 'instance' : `tenant:${m.tenant ?? ''}`;
  return {
    kind,
    ...(namespace !== undefined ? { namespace } : {}),
    name: bindingName(`usher:group:${where}:${group}:${clusterRole}`),
    clusterRole,
    subject,
    shared: true,
  };
}

/** Readable when it fits (RBAC names are path segments of at most 253 characters), a hash of it when not. */
function bindingName(readable: string): string {
  if (readable.length <= 253) return readable;
  return `usher:${createHash('sha256').update(readable).digest('hex').slice(0, 40)}`;
}

/** A binding's identity: kind, namespace (RoleBindings only) and name, as the projection and the controller compare them. */
export function bindingKey(kind: DesiredBinding['kind'], namespace: string | undefined, name: string): string {
  return `${kind}/${kind === 'RoleBinding' ? (namespace ?? '') : ''}/${name}`;
}

function byKey(a: DesiredBinding, b: DesiredBinding): number {
  return bindingKey(a.kind, a.namespace, a.name).localeCompare(bindingKey(b.kind, b.namespace, b.name));
}

function dedupeNotes(notes: readonly ProjectionNote[]): ProjectionNote[] {
  const seen = new Set<string>();
  return notes.filter((n) => {
    const key = JSON.stringify(n);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
