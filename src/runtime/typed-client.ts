// A small typed client for one resource kind over the RestClient: the reads
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
import type { V1ClusterRoleBinding, V1Namespace, V1RoleBinding, V1Secret } from '@kubernetes/client-node';
import { isAlreadyExists, isNotFound } from './client.ts';
import type { ListPageOptions, ListResult, ObjectLike } from './informer.ts';
import type { Query, RestClient } from './rest-client.ts';

/** Delete preconditions: the delete fails with Conflict unless the object still has them. */
export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

/** The calls of one resource kind; `namespace` is undefined for cluster-scoped kinds. */
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

/** Where a kind is served: `/api/v1` or `/apis/<group>/<version>`, and its plural. */
export interface ResourcePath {
  /** `/api/v1` for the core group, `/apis/<group>/<version>` for the others. */
  apiPath: string;
  plural: string;
  /**
   * `required`: a namespaced kind (a list without a namespace lists every namespace);
   * `never`: a cluster-scoped one; `optional`: the call decides, as for custom resources
   * (a call with a namespace goes to the namespaced endpoint, one without to the cluster-wide one).
   */
  namespaced: 'required' | 'never' | 'optional';
  /** Whether the kind has a status subresource. */
  status?: boolean;
}

const segment = encodeURIComponent;

/**
 * The calls of one kind over a RestClient: the objects are the plain JSON the
 * API server sent, typed as T (timestamps are strings, as on the wire).
 */
export function restResource<T>(rest: RestClient, kind: string, resource: ResourcePath): ResourceApi<T> {
  const { apiPath, plural, namespaced } = resource;
  const collection = (namespace: string | undefined): string => {
    const ns = namespaced === 'never' ? undefined : namespace;
    return ns ? `${apiPath}/namespaces/${segment(ns)}/${plural}` : `${apiPath}/${plural}`;
  };
  const one = (namespace: string | undefined, name: string): string => {
    // URL resolution would turn /secrets/.. into the namespace's path: no object has such a name.
    if (name === '' || name === '.' || name === '..') throw new Error(`a ${kind} cannot be named ${JSON.stringify(name)}`);
    return `${collection(namespaced === 'required' ? namespaceOf(kind, namespace) : namespace)}/${segment(name)}`;
  };
  const api: ResourceApi<T> = {
    read: (namespace, name) => rest.get<T>(one(namespace, name)),
    list: (namespace, options) => rest.get<ListResult<T>>(collection(namespace), listQuery(options)),
    create: (namespace, body) => rest.post<T>(collection(namespaced === 'required' ? namespaceOf(kind, namespace) : namespace), body),
    replace: (namespace, name, body) => rest.put<T>(one(namespace, name), body),
    delete: (namespace, name, preconditions) => rest.delete(one(namespace, name), preconditions ? { preconditions } : undefined),
  };
  if (resource.status) api.replaceStatus = (namespace, name, body) => rest.put<T>(`${one(namespace, name)}/status`, body);
  return api;
}

/** The list's query parameters, without the undefined ones. */
const listQuery = (options: ListOptions): Query => ({
  ...(options.labelSelector === undefined ? {} : { labelSelector: options.labelSelector }),
  ...(options.limit === undefined ? {} : { limit: options.limit }),
  ...(options.continue === undefined ? {} : { continue: options.continue }),
});

/** Secrets (namespaced; a list without a namespace lists every namespace). */
export function secretsClient(rest: RestClient): TypedClient<V1Secret> {
  return new TypedClient<V1Secret>('Secret', restResource(rest, 'Secret', { apiPath: '/api/v1', plural: 'secrets', namespaced: 'required' }));
}

/** Namespaces (cluster-scoped). */
export function namespacesClient(rest: RestClient): TypedClient<V1Namespace> {
  return new TypedClient<V1Namespace>(
    'Namespace',
    restResource(rest, 'Namespace', { apiPath: '/api/v1', plural: 'namespaces', namespaced: 'never', status: true }),
  );
}

/** RoleBindings (namespaced; a list without a namespace lists every namespace). */
export function roleBindingsClient(rest: RestClient): TypedClient<V1RoleBinding> {
  return new TypedClient<V1RoleBinding>(
    'RoleBinding',
    restResource(rest, 'RoleBinding', { apiPath: '/apis/rbac.authorization.k8s.io/v1', plural: 'rolebindings', namespaced: 'required' }),
  );
}

/** ClusterRoleBindings (cluster-scoped). */
export function clusterRoleBindingsClient(rest: RestClient): TypedClient<V1ClusterRoleBinding> {
  return new TypedClient<V1ClusterRoleBinding>(
    'ClusterRoleBinding',
    restResource(rest, 'ClusterRoleBinding', { apiPath: '/apis/rbac.authorization.k8s.io/v1', plural: 'clusterrolebindings', namespaced: 'never' }),
  );
}

export interface CustomResource {
  group: string;
  version: string;
  plural: string;
}

/**
 * A custom resource, namespaced or cluster-scoped: a call with a namespace
 * goes to the namespaced endpoint, one without to the cluster-wide one. Every
 * custom resource Usher serves has a status subresource.
 */
export function customObjectsClient<T extends ObjectLike>(rest: RestClient, kind: string, resource: CustomResource): TypedClient<T> {
  const { group, version, plural } = resource;
  return new TypedClient<T>(kind, restResource<T>(rest, kind, { apiPath: `/apis/${group}/${version}`, plural, namespaced: 'optional', status: true }));
}
