// The RBAC controller's view of the bindings Usher made (usher.rbac): two
// informers, RoleBindings in every namespace and ClusterRoleBindings, each
// only those labelled app.kubernetes.io/managed-by=usher with a
// usher.dev/binding kind, indexed by the uid of the Users that own them; and
// the writes, each remembered in an overlay so that the next reconcile reads
// its own writes before the watch delivers them.
import type { KubeConfig, V1ClusterRoleBinding, V1RoleBinding } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { BINDING_KIND_LABEL } from '../invitation/rbac.ts';
import { MANAGED_BY, MANAGED_BY_LABEL } from '../invitation/record.ts';
import { Informer, objectKey } from '../runtime/informer.ts';
import { cachedStrings } from '../runtime/intern.ts';
import type { Overlay } from '../runtime/overlay.ts';
import { RestClient } from '../runtime/rest-client.ts';
import { clusterRoleBindingsClient, roleBindingsClient, type TypedClient } from '../runtime/typed-client.ts';
import { overlayFor } from './kube-store.ts';
import type { BindingManifest, BindingObject, BindingStore } from './ports.ts';

export const BINDING_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY},${BINDING_KIND_LABEL}`;
const BY_OWNER_UID = 'ownerUid';

type Kind = BindingObject['kind'];

export class KubeBindings implements BindingStore {
  readonly roleBindings: Informer<V1RoleBinding>;
  readonly clusterRoleBindings: Informer<V1ClusterRoleBinding>;
  private readonly clients: { RoleBinding: TypedClient<V1RoleBinding>; ClusterRoleBinding: TypedClient<V1ClusterRoleBinding> };
  private readonly overlays: { RoleBinding: Overlay<V1RoleBinding>; ClusterRoleBinding: Overlay<V1ClusterRoleBinding> };

  constructor(kubeConfig: KubeConfig, log: Logger, resyncPeriodMs: number, rest: RestClient = new RestClient(kubeConfig)) {
    this.clients = { RoleBinding: roleBindingsClient(rest), ClusterRoleBinding: clusterRoleBindingsClient(rest) };
    const informerLog = log.child({ component: 'informer' });
    this.roleBindings = new Informer<V1RoleBinding>({
      kubeConfig,
      path: '/apis/rbac.authorization.k8s.io/v1/rolebindings',
      labelSelector: BINDING_SELECTOR,
      list: (page) => this.clients.RoleBinding.list({ labelSelector: BINDING_SELECTOR, ...page }),
      // Kept whole: the RBAC reconciler replaces a binding from its cached copy (ownerReferences). Strings shared.
      transform: (binding) => cachedStrings.internAll(binding),
      resyncPeriodMs,
      log: informerLog,
    });
    this.clusterRoleBindings = new Informer<V1ClusterRoleBinding>({
      kubeConfig,
      path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      labelSelector: BINDING_SELECTOR,
      list: (page) => this.clients.ClusterRoleBinding.list({ labelSelector: BINDING_SELECTOR, ...page }),
      transform: (binding) => cachedStrings.internAll(binding),
      resyncPeriodMs,
      log: informerLog,
    });
    const owners = (b: V1RoleBinding | V1ClusterRoleBinding): string[] =>
      (b.metadata?.ownerReferences ?? []).filter((o) => o.kind === 'User').map((o) => o.uid);
    this.roleBindings.addIndex(BY_OWNER_UID, owners);
    this.clusterRoleBindings.addIndex(BY_OWNER_UID, owners);
    this.overlays = { RoleBinding: overlayFor(this.roleBindings), ClusterRoleBinding: overlayFor(this.clusterRoleBindings) };
  }

  informers(): [Informer<V1RoleBinding>, Informer<V1ClusterRoleBinding>] {
    return [this.roleBindings, this.clusterRoleBindings];
  }

  binding(kind: Kind, namespace: string | undefined, name: string): BindingObject | undefined {
    const key = objectKey(kind === 'RoleBinding' ? namespace : undefined, name);
    const found =
      kind === 'RoleBinding'
        ? this.overlays.RoleBinding.resolve(key, this.roleBindings.get(namespace, name))
        : this.overlays.ClusterRoleBinding.resolve(key, this.clusterRoleBindings.get(undefined, name));
    return found ? { kind, object: plain(found) } : undefined;
  }

  ownedBy(uid: string): BindingObject[] {
    const found = new Map<string, BindingObject>();
    const collect = (kind: Kind, objects: (V1RoleBinding | V1ClusterRoleBinding)[]): void => {
      for (const o of objects) {
        const current = this.binding(kind, o.metadata?.namespace, o.metadata?.name ?? '');
        if (current?.object.metadata?.ownerReferences?.some((r) => r.uid === uid))
          found.set(`${kind}/${objectKey(o.metadata?.namespace, o.metadata?.name ?? '')}`, current);
      }
    };
    collect('RoleBinding', this.roleBindings.byIndex(BY_OWNER_UID, uid));
    collect('ClusterRoleBinding', this.clusterRoleBindings.byIndex(BY_OWNER_UID, uid));
    // Written by this process but not yet seen by the watch.
    for (const kind of ['RoleBinding', 'ClusterRoleBinding'] as const) {
      for (const [key, object] of this.overlays[kind].pending()) {
        if (object?.metadata?.ownerReferences?.some((r) => r.uid === uid)) found.set(`${kind}/${key}`, { kind, object: plain(object) });
      }
    }
    return [...found.values()];
  }

  async create(binding: BindingObject): Promise<BindingObject> {
    return this.remember(binding.kind, await this.client(binding.kind).create(binding.object));
  }

  async replace(binding: BindingObject): Promise<BindingObject> {
    return this.remember(binding.kind, await this.client(binding.kind).replace(binding.object));
  }

  async delete(binding: BindingObject): Promise<void> {
    const { namespace, name = '', uid, resourceVersion } = binding.object.metadata ?? {};
    const ns = binding.kind === 'RoleBinding' ? namespace : undefined;
    await this.client(binding.kind).deleteIgnoringNotFound(ns, name, { ...(uid ? { uid } : {}), ...(resourceVersion ? { resourceVersion } : {}) });
    this.overlays[binding.kind].deleted(objectKey(ns, name));
  }

  private client(kind: Kind): TypedClient<V1RoleBinding> {
    // The two kinds have the same shape (metadata, roleRef, subjects).
    return kind === 'RoleBinding' ? this.clients.RoleBinding : this.clients.ClusterRoleBinding;
  }

  private remember(kind: Kind, written: V1RoleBinding): BindingObject {
    const { namespace, name = '', resourceVersion } = written.metadata ?? {};
    this.overlays[kind].wrote(objectKey(kind === 'RoleBinding' ? namespace : undefined, name), written, resourceVersion);
    return { kind, object: plain(written) };
  }
}

/** The client's typed object as the plain JSON it came as (client-node's classes add nothing but types). */
function plain(binding: V1RoleBinding | V1ClusterRoleBinding): BindingManifest {
  return binding as BindingManifest;
}
