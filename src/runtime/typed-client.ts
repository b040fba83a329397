// A small typed client for one resource kind over client-node 2.x: the reads
// and writes controllers make, each saying which error means what, so callers
// never test status codes themselves.
//
//   getOrUndefined        a read; undefined for 404
//   create                fails with AlreadyExists (isAlreadyExists) when the name is taken
//   replace, replaceStatus optimistic: the object carries the resourceVersion it was read
//                         at, and a stale one fails with Conflict (isConflict)
//   createOrReplace       create, or replace what is there (last writer wins)
//   deleteIgnoringNotFound a delete that is done when the object is gone already
//
// secretsClient(), namespacesClient(), roleBindingsClient(),
// clusterRoleBindingsClient() and customObjectsClient() bind it to a
// kind; tests pass a ResourceApi of their own.
import type { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, V1ClusterRoleBinding, V1Namespace, V1RoleBinding, V1Secret } from '@kubernetes/client-node';
import { isAlreadyExists, isNotFound } from './client.ts';
import type { ListPageOptions, ListResult, ObjectLike } from './informer.ts';

/** Delete preconditions: the delete fails with Conflict unless the object still has them. */
export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

/** The calls of one resource kind, as client-node spells them; `namespace` is undefined for cluster-scoped kinds. */
export interface ResourceApi<T> {
  read(namespace: string | undefined, name: string): Promise<T>;
  /** One page: at most `limit` objects (all without one), from the `continue` token of the page before. */
  list(namespace: string | undefined, options: ListOptions): Promise<ListResult<T>>;
  create(namespace: string | undefined, body: T): Promise<T>;
  replace(namespace: string | undefined, name: string, body: T): Promise<T>;
  /** Only for kinds with a status subresource. */
  replaceStatus?(namespace: string | undefined, name: string, body: T): Promise<T>;
  delete(namespace: string | undefined, name: string, preconditions: Preconditions | undefined): Promise<unknown>;
}

/** What to list: a namespace (all without one), a label selector, and the page (see ListPageOptions). */
export interface ListOptions extends ListPageOptions {
  namespace?: string;
  labelSelector?: string;
}

export class TypedClient<T extends ObjectLike> {
  readonly #kind: string;
  readonly #api: ResourceApi<T>;

  /** @param kind names the kind in error messages. */
  constructor(kind: string, api: ResourceApi<T>) {
    this.#kind = kind;
    this.#api = api;
  }

  /** The object as the API server has it now; undefined when there is none. */
  async getOrUndefined(namespace: string | undefined, name: string): Promise<T | undefined> {
    try {
      return await this.#api.read(namespace, name);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * All of them, or those of one namespace, optionally by label selector; with
   * `limit`, one page of at most that many, the next page from metadata.continue
   * (an informer's list function: `(page) => client.list({ ...selectors, ...page })`).
   */
  async list(options: ListOptions = {}): Promise<ListResult<T>> {
    return this.#api.list(options.namespace, options);
  }

  /** Creates it in metadata.namespace; fails with AlreadyExists when one of that name exists. */
  async create(obj: T): Promise<T> {
    return this.#api.create(obj.metadata?.namespace, obj);
  }

  /**
   * Replaces it, optimistically: `obj` must carry the resourceVersion it was
   * read at, and fails with Conflict when the object changed since (NotFound when it is gone).
   */
  async replace(obj: T): Promise<T> {
    const { namespace, name } = this.#optimistic(obj, 'replace');
    return this.#api.replace(namespace, name, obj);
  }

  /** Replaces its status through the status subresource, optimistically like replace(). */
  async replaceStatus(obj: T): Promise<T> {
    const { namespace, name } = this.#optimistic(obj, 'replaceStatus');
    if (!this.#api.replaceStatus) throw new Error(`${this.#kind} has no status subresource`);
    return this.#api.replaceStatus(namespace, name, obj);
  }

  /**
   * Creates it, or, when one of that name exists, replaces that one with `obj`:
   * unconditionally (last writer wins) unless `obj` carries a resourceVersion.
   */
  async createOrReplace(obj: T): Promise<T> {
    try {
      return await this.create(obj);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return this.#api.replace(obj.metadata?.namespace, this.#nameOf(obj, 'createOrReplace'), obj);
    }
  }

  /** Deletes it; false when it was gone already. A precondition that no longer holds fails with Conflict. */
  async deleteIgnoringNotFound(namespace: string | undefined, name: string, preconditions?: Preconditions): Promise<boolean> {
    try {
      await this.#api.delete(namespace, name, preconditions);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  #optimistic(obj: T, call: string): { namespace: string | undefined; name: string } {
    const name = this.#nameOf(obj, call);
    // Without one the API server would replace unconditionally, silently overwriting whatever changed since the read.
    if (!obj.metadata?.resourceVersion) throw new Error(`${call} of ${this.#kind} ${name} needs the resourceVersion it was read at`);
    return { namespace: obj.metadata.namespace, name };
  }

  #nameOf(obj: T, call: string): string {
    const name = obj.metadata?.name;
    if (!name) throw new Error(`${call} of a ${this.#kind} without metadata.name`);
    return name;
  }
}

function namespaceOf(kind: string, namespace: string | undefined): string {
  if (!namespace) throw new Error(`a ${kind} needs a namespace`);
  return namespace;
}

/**
 * A typed list's page in the informer's shape: client-node's V1ListMeta calls
 * the continue token `_continue` (its JSON name is `continue`).
 */
async function page<T>(list: Promise<{ items: T[]; metadata?: { resourceVersion?: string; _continue?: string } }>): Promise<ListResult<T>> {
  const { items, metadata } = await list;
  const { resourceVersion, _continue: token } = metadata ?? {};
  return {
    items,
    metadata: { ...(resourceVersion !== undefined ? { resourceVersion } : {}), ...(token ? { continue: token } : {}) },
  };
}

/** client-node's list parameters (its `continue` is spelled `_continue`), without the undefined ones. */
const listParams = (options: ListOptions): { labelSelector?: string; limit?: number; _continue?: string } => ({
  ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
  ...(options.limit === undefined ? {} : { limit: options.limit }),
  ...(options.continue === undefined ? {} : { _continue: options.continue }),
});
const withPreconditions = (preconditions: Preconditions | undefined): { body?: { preconditions: Preconditions } } =>
  preconditions ? { body: { preconditions } } : {};

/** Secrets (namespaced; a list without a namespace lists every namespace). */
export function secretsClient(core: CoreV1Api): TypedClient<V1Secret> {
  const ns = (namespace: string | undefined): string => namespaceOf('Secret', namespace);
  return new TypedClient<V1Secret>('Secret', {
    read: (namespace, name) => core.readNamespacedSecret({ namespace: ns(namespace), name }),
    list: (namespace, options) =>
      page(namespace ? core.listNamespacedSecret({ namespace, ...listParams(options) }) : core.listSecretForAllNamespaces(listParams(options))),
    create: (namespace, body) => core.createNamespacedSecret({ namespace: ns(namespace), body }),
    replace: (namespace, name, body) => core.replaceNamespacedSecret({ namespace: ns(namespace), name, body }),
    delete: (namespace, name, preconditions) => core.deleteNamespacedSecret({ namespace: ns(namespace), name, ...withPreconditions(preconditions) }),
  });
}

/** Namespaces (cluster-scoped). */
export function namespacesClient(core: CoreV1Api): TypedClient<V1Namespace> {
  return new TypedClient<V1Namespace>('Namespace', {
    read: (_namespace, name) => core.readNamespace({ name }),
    list: (_namespace, options) => page(core.listNamespace(listParams(options))),
    create: (_namespace, body) => core.createNamespace({ body }),
    replace: (_namespace, name, body) => core.replaceNamespace({ name, body }),
    replaceStatus: (_namespace, name, body) => core.replaceNamespaceStatus({ name, body }),
    delete: (_namespace, name, preconditions) => core.deleteNamespace({ name, ...withPreconditions(preconditions) }),
  });
}

/** RoleBindings (namespaced; a list without a namespace lists every namespace). */
export function roleBindingsClient(rbac: RbacAuthorizationV1Api): TypedClient<V1RoleBinding> {
  const ns = (namespace: string | undefined): string => namespaceOf('RoleBinding', namespace);
  return new TypedClient<V1RoleBinding>('RoleBinding', {
    read: (namespace, name) => rbac.readNamespacedRoleBinding({ namespace: ns(namespace), name }),
    list: (namespace, options) =>
      page(namespace ? rbac.listNamespacedRoleBinding({ namespace, ...listParams(options) }) : rbac.listRoleBindingForAllNamespaces(listParams(options))),
    create: (namespace, body) => rbac.createNamespacedRoleBinding({ namespace: ns(namespace), body }),
    replace: (namespace, name, body) => rbac.replaceNamespacedRoleBinding({ namespace: ns(namespace), name, body }),
    delete: (namespace, name, preconditions) => rbac.deleteNamespacedRoleBinding({ namespace: ns(namespace), name, ...withPreconditions(preconditions) }),
  });
}

/** ClusterRoleBindings (cluster-scoped). */
export function clusterRoleBindingsClient(rbac: RbacAuthorizationV1Api): TypedClient<V1ClusterRoleBinding> {
  return new TypedClient<V1ClusterRoleBinding>('ClusterRoleBinding', {
    read: (_namespace, name) => rbac.readClusterRoleBinding({ name }),
    list: (_namespace, options) => page(rbac.listClusterRoleBinding(listParams(options))),
    create: (_namespace, body) => rbac.createClusterRoleBinding({ body }),
    replace: (_namespace, name, body) => rbac.replaceClusterRoleBinding({ name, body }),
    delete: (_namespace, name, preconditions) => rbac.deleteClusterRoleBinding({ name, ...withPreconditions(preconditions) }),
  });
}

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

/**
 * A custom resource through CustomObjectsApi, namespaced or cluster-scoped: a
 * call with a namespace goes to the namespaced endpoint, one without to the
 * cluster-wide one. The objects are the plain JSON the server sent, typed as T.
 */
export function customObjectsClient<T extends ObjectLike>(custom: CustomObjectsApi, kind: string, resource: CustomResource): TypedClient<T> {
  const { group, version, plural } = resource;
  return new TypedClient<T>(kind, {
    read: async (namespace, name) =>
      (await (namespace
        ? custom.getNamespacedCustomObject({ group, version, namespace, plural, name })
        : custom.getClusterCustomObject({ group, version, plural, name }))) as T,
    list: async (namespace, options) =>
      (await (namespace
        ? custom.listNamespacedCustomObject({ group, version, namespace, plural, ...listParams(options) })
        : custom.listClusterCustomObject({ group, version, plural, ...listParams(options) }))) as ListResult<T>,
    create: async (namespace, body) =>
      (await (namespace
        ? custom.createNamespacedCustomObject({ group, version, namespace, plural, body })
        : custom.createClusterCustomObject({ group, version, plural, body }))) as T,
    replace: async (namespace, name, body) =>
      (await (namespace
        ? custom.replaceNamespacedCustomObject({ group, version, namespace, plural, name, body })
        : custom.replaceClusterCustomObject({ group, version, plural, name, body }))) as T,
    replaceStatus: async (namespace, name, body) =>
      (await (namespace
        ? custom.replaceNamespacedCustomObjectStatus({ group, version, namespace, plural, name, body })
        : custom.replaceClusterCustomObjectStatus({ group, version, plural, name, body }))) as T,
    delete: (namespace, name, preconditions) =>
      namespace
        ? custom.deleteNamespacedCustomObject({ group, version, namespace, plural, name, ...withPreconditions(preconditions) })
        : custom.deleteClusterCustomObject({ group, version, plural, name, ...withPreconditions(preconditions) }),
  });
}
