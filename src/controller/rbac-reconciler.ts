// One reconcile of one User's Kubernetes access (usher.rbac): read the User,
// the namespaces and the bindings it owns (caches), project (projectUser, pure),
// then create what is missing, fix what drifted, take away what is no longer
// granted, and write the User's Bound condition only when it changed.
//
// A person's bindings are owned by their User alone (deleting the User removes
// them through garbage collection, and this controller removes them as soon as
// the deletion starts, without waiting for other finalizers). A Group binding
// is shared by every User holding that group and lists each as an owner: it
// goes when the last one does (docs/adr/0008).
//
// A binding the API server refuses (a ClusterRole the chart did not grant
// `bind` on, such as cluster-admin) is skipped and named in the condition; the
// rest are still made, and the controller keeps running.
import type { V1Namespace } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION, USER_KIND, type User, type UserStatus } from '../api/types.ts';
import type { RbacConfig, UsherConfig } from '../config/types.ts';
import {
  BINDING_KIND_LABEL,
  bindingKey,
  BOUND,
  boundCondition,
  describe,
  grantedMemberships,
  projectUser,
  type InvitationLookup,
  type DesiredBinding,
  type RefusedBinding,
  type NamespaceView,
  type Projection,
} from '../invitation/rbac.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../invitation/record.ts';
import { withOwnedCondition } from '../invitation/user-status.ts';
import { apiErrorOf, isAlreadyExists } from '../runtime/client.ts';
import type { BindingManifest, BindingObject, BindingStore, UserStore } from './ports.ts';

type OwnerReference = NonNullable<NonNullable<BindingManifest['metadata']>['ownerReferences']>[number];
import { sameStatus, type ReconcileResult } from './reconciler.ts';

export interface RbacReconcilerDeps {
  users: Pick<UserStore, 'user' | 'writeUserStatus' | 'userEvent'>;
  namespaces: () => readonly V1Namespace[];
  bindings: BindingStore;
  /** The invitations the memberships came from (cache), with their namespace's tenant: only what they grant is bound. */
  invitations: InvitationLookup;
  config: UsherConfig;
  rbac: RbacConfig;
  log: Logger;
  now?: () => Date;
}

/** After a refusal, look again this often: the fix (a chart upgrade granting `bind`) changes nothing Usher watches. */
const REFUSED_RETRY_MS = 60_000;
/** After a name was taken: soon, since it is most often a binding this process made and has not seen yet. */
const NAME_TAKEN_RETRY_MS = 2_000;

export class RbacReconciler {
  private readonly deps: RbacReconcilerDeps;

  constructor(deps: RbacReconcilerDeps) {
    this.deps = deps;
  }

  async reconcile(name: string): Promise<ReconcileResult> {
    const { users, bindings, rbac, log } = this.deps;
    const now = this.deps.now ?? (() => new Date());
    const user = users.user(name);
    // Gone: the garbage collector removes what it owned (and drops it from shared bindings).
    if (!user?.metadata.uid) return {};
    const uid = user.metadata.uid;
    const deleting = user.metadata.deletionTimestamp !== undefined;
    const projection: Projection = deleting ? { bindings: [], notes: [] } : this.project(user, rbac);

    const created: DesiredBinding[] = [];
    const removed: BindingObject[] = [];
    const refused: RefusedBinding[] = [];
    // Errors that a retry may clear (a conflict, the API server briefly away): each binding on its own, so
    // one that cannot be written never holds up the others, and above all never a removal.
    const failed: unknown[] = [];
    const wanted = new Set(projection.bindings.map((b) => bindingKey(b.kind, b.namespace, b.name)));
    // Removals first: access that is no longer granted goes before anything else can fail.
    for (const have of bindings.ownedBy(uid)) {
      const { namespace, name: bindingName = '' } = have.object.metadata ?? {};
      if (wanted.has(bindingKey(have.kind, namespace, bindingName))) continue;
      try {
        await this.release(have, uid);
        removed.push(have);
      } catch (err) {
        failed.push(err);
      }
    }
    for (const want of projection.bindings) {
      try {
        if (await this.ensure(user, want)) created.push(want);
      } catch (err) {
        const { code, message } = apiErrorOf(err);
        if (code === 403) {
          refused.push({ binding: want, reason: 'BindForbidden', message });
          log.warn({ user: name, binding: describe(want), err: message }, 'the API server refused a binding');
        } else if (isAlreadyExists(err) && !want.shared) {
          // A person's binding is written by this User's reconcile alone, whose own writes the cache
          // (with its overlay) remembers: one of that name that it does not show is someone else's
          // object (without Usher's labels). Named, and looked at again soon. (A shared Group
          // binding made by another User's reconcile a moment ago is retried like any conflict.)
          refused.push({ binding: want, reason: 'NameTaken', message: `${want.kind} ${want.name} exists and is not one of Usher's (or not seen yet)` });
        } else failed.push(err);
      }
    }

    if (created.length > 0 || removed.length > 0) {
      const parts = [
        created.length > 0 ? `bound ${created.map(short).join(', ')}` : '',
        removed.length > 0 ? `removed ${removed.map((b) => shortObject(b)).join(', ')}` : '',
      ].filter(Boolean);
      users.userEvent(user, 'Normal', 'AccessBound', `Kubernetes RBAC: ${parts.join('; ')}.`);
      log.info({ user: name, created: created.length, removed: removed.length }, 'updated the User\u2019s RoleBindings');
    }
    if (!deleting)
      await this.writeStatusIfChanged(
        user,
        boundCondition(
          projection,
          refused,
          failed.map((e) => apiErrorOf(e).message),
        ),
        now(),
      );
    // Retried with backoff (the work queue's), after the status says what is wrong.
    if (failed.length > 0) throw failed[0];
    if (refused.some((r) => r.reason === 'NameTaken')) return { requeueAfterMs: NAME_TAKEN_RETRY_MS };
    return refused.length > 0 ? { requeueAfterMs: REFUSED_RETRY_MS } : {};
  }

  /** Makes `want` exist as projected, with this User among its owners; true when it had to be created. */
  private async ensure(user: User, want: DesiredBinding): Promise<boolean> {
    const { bindings } = this.deps;
    const existing = bindings.binding(want.kind, want.namespace, want.name);
    if (!existing) {
      // AlreadyExists: another worker made it (a shared Group binding), or someone else's object has the name.
      await bindings.create({ kind: want.kind, object: this.objectFor(want, [ownerRef(user)]) });
      return true;
    }
    const current = existing.object;
    const owners = current.metadata?.ownerReferences ?? [];
    const mine = owners.some((o) => o.uid === user.metadata.uid);
    const desired = this.objectFor(want, want.shared ? (mine ? owners : [...owners, ownerRef(user)]) : [ownerRef(user)]);
    if (current.roleRef.name !== want.clusterRole || current.roleRef.kind !== 'ClusterRole') {
      // roleRef cannot change: a binding that points elsewhere (edited by hand) is replaced whole.
      await bindings.delete(existing);
      await bindings.create({ kind: want.kind, object: desired });
      return true;
    }
    if (mine && sameBinding(current, desired)) return false;
    await bindings.replace({ kind: want.kind, object: { ...desired, metadata: { ...desired.metadata, resourceVersion: current.metadata?.resourceVersion } } });
    return false;
  }

  /** Takes this User off a binding it no longer gets: deletes a person's binding, or the shared one it was the last owner of. */
  private async release(have: BindingObject, uid: string): Promise<void> {
    const owners = (have.object.metadata?.ownerReferences ?? []).filter((o) => o.uid !== uid);
    if (owners.length === 0) {
      await this.deps.bindings.delete(have);
      return;
    }
    await this.deps.bindings.replace({ kind: have.kind, object: { ...have.object, metadata: { ...have.object.metadata, ownerReferences: owners } } });
  }

  private objectFor(want: DesiredBinding, owners: OwnerReference[]): BindingManifest {
    return {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: want.kind,
      metadata: {
        name: want.name,
        ...(want.namespace !== undefined ? { namespace: want.namespace } : {}),
        labels: { [MANAGED_BY_LABEL]: MANAGED_BY, [BINDING_KIND_LABEL]: want.shared ? 'group' : 'person' },
        ownerReferences: owners,
      },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: want.clusterRole },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: want.subject.kind, name: want.subject.name }],
    };
  }

  /** The bindings for what the User's invitations grant, with the notes on what they do not. */
  private project(user: User, rbac: RbacConfig): Projection {
    const granted = grantedMemberships(user, this.deps.invitations, this.deps.config);
    const projection = projectUser({ ...user, spec: { ...user.spec, memberships: granted.memberships } }, this.namespaceView(), rbac);
    return { ...projection, notes: [...granted.notes, ...projection.notes] };
  }

  private namespaceView(): NamespaceView {
    const tenantOf = new Map<string, string | undefined>();
    for (const ns of this.deps.namespaces()) {
      const name = ns.metadata?.name;
      // A namespace being deleted takes its RoleBindings with it: nothing to bind there.
      if (name && !ns.metadata?.deletionTimestamp) tenantOf.set(name, ns.metadata?.labels?.[this.deps.config.tenancy.namespaceLabel]);
    }
    return { tenantOf };
  }

  private async writeStatusIfChanged(user: User, bound: ReturnType<typeof boundCondition>, now: Date): Promise<void> {
    const previous = user.status ?? {};
    const generation = user.metadata.generation;
    const status: UserStatus = { ...previous, conditions: withOwnedCondition(previous.conditions, bound, generation, now) };
    if (sameStatus(previous, status)) return;
    await this.deps.users.writeUserStatus(user, status);
    const before = previous.conditions?.find((c) => c.type === BOUND);
    if (before?.status !== bound.status || before.reason !== bound.reason) {
      this.deps.users.userEvent(user, bound.status === 'True' || bound.reason === 'WaitingForAccount' ? 'Normal' : 'Warning', bound.reason, bound.message);
    }
  }
}

function ownerRef(user: User): OwnerReference {
  // Not `controller`: a shared Group binding has several owners, and none of them alone controls it.
  return { apiVersion: API_VERSION, kind: USER_KIND, name: user.metadata.name, uid: user.metadata.uid ?? '' };
}

/** Whether a binding already says what `desired` says (labels, owners, roleRef, subjects). */
function sameBinding(current: BindingManifest, desired: BindingManifest): boolean {
  const labels = desired.metadata?.labels ?? {};
  const currentLabels = current.metadata?.labels ?? {};
  const uids = (b: BindingManifest): string =>
    (b.metadata?.ownerReferences ?? [])
      .map((o) => o.uid)
      .sort()
      .join(',');
  const subjects = (b: BindingManifest): string => JSON.stringify((b.subjects ?? []).map((s) => [s.kind, s.name, s.apiGroup ?? '', s.namespace ?? '']));
  return Object.entries(labels).every(([k, v]) => currentLabels[k] === v) && uids(current) === uids(desired) && subjects(current) === subjects(desired);
}

function short(b: DesiredBinding): string {
  return `${b.clusterRole} ${b.kind === 'RoleBinding' ? `in ${b.namespace ?? ''}` : 'cluster-wide'}${b.subject.kind === 'Group' ? ` for group ${b.subject.name}` : ''}`;
}

function shortObject(b: BindingObject): string {
  const where = b.kind === 'RoleBinding' ? `in ${b.object.metadata?.namespace ?? ''}` : 'cluster-wide';
  return `${b.object.roleRef.name} ${where}`;
}
