// The typed client without a cluster: what each call makes of NotFound,
// AlreadyExists and Conflict (against an in-memory resource with the API
// server's rules), and the requests its bindings to each kind send through a
// RestClient (to a local HTTP server that answers as the API server would).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiException, KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlreadyExists, isConflict, isConflictOrAlreadyExists, isNotFound } from '../../src/runtime/client.ts';
import { RestClient } from '../../src/runtime/rest-client.ts';
import {
  clusterRoleBindingsClient,
  customObjectsClient,
  namespacesClient,
  roleBindingsClient,
  secretsClient,
  TypedClient,
  type Preconditions,
  type ResourceApi,
} from '../../src/runtime/typed-client.ts';

interface Obj {
  metadata: { name: string; namespace?: string; resourceVersion?: string; uid?: string };
  data?: string;
  status?: string;
}

const status = (code: number, reason: string, message: string): ApiException<unknown> =>
  new ApiException(code, reason, { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message }, {});

/** One resource kind in memory, with the API server's rules for names, resourceVersions and preconditions. */
class MemoryResource implements ResourceApi<Obj> {
  readonly objects = new Map<string, Obj>();
  readonly calls: string[] = [];
  #version = 0;
  /** Thrown by the next call, whatever it is (a 403, a 500). */
  failNext: Error | undefined;

  read(namespace: string | undefined, name: string): Promise<Obj> {
    return this.#call('read', () => this.#existing(namespace, name));
  }

  list(namespace: string | undefined): Promise<{ items: Obj[]; metadata: { resourceVersion: string } }> {
    return this.#call('list', () => ({
      items: [...this.objects.values()].filter((o) => namespace === undefined || o.metadata.namespace === namespace),
      metadata: { resourceVersion: String(this.#version) },
    }));
  }

  create(namespace: string | undefined, body: Obj): Promise<Obj> {
    return this.#call('create', () => {
      const key = `${namespace ?? ''}/${body.metadata.name}`;
      if (this.objects.has(key)) throw status(409, 'AlreadyExists', `"${body.metadata.name}" already exists`);
      return this.#store(key, { ...body, metadata: { ...body.metadata, uid: `uid-${body.metadata.name}` } });
    });
  }

  replace(namespace: string | undefined, name: string, body: Obj): Promise<Obj> {
    return this.#call('replace', () => {
      const current = this.#existing(namespace, name);
      this.#checkVersion(current, body.metadata.resourceVersion);
      return this.#store(`${namespace ?? ''}/${name}`, { ...body, metadata: { ...body.metadata, uid: current.metadata.uid }, status: current.status });
    });
  }

  replaceStatus(namespace: string | undefined, name: string, body: Obj): Promise<Obj> {
    return this.#call('replaceStatus', () => {
      const current = this.#existing(namespace, name);
      this.#checkVersion(current, body.metadata.resourceVersion);
      return this.#store(`${namespace ?? ''}/${name}`, { ...current, status: body.status });
    });
  }

  delete(namespace: string | undefined, name: string, preconditions: Preconditions | undefined): Promise<unknown> {
    return this.#call('delete', () => {
      const current = this.#existing(namespace, name);
      if (preconditions?.uid !== undefined && preconditions.uid !== current.metadata.uid)
        throw status(409, 'Conflict', 'Precondition failed: UID in precondition');
      this.objects.delete(`${namespace ?? ''}/${name}`);
      return {};
    });
  }

  async #call<R>(what: string, run: () => R): Promise<R> {
    this.calls.push(what);
    await Promise.resolve();
    const failure = this.failNext;
    this.failNext = undefined;
    if (failure !== undefined) throw failure;
    return structuredClone(run());
  }

  #existing(namespace: string | undefined, name: string): Obj {
    const found = this.objects.get(`${namespace ?? ''}/${name}`);
    if (!found) throw status(404, 'NotFound', `"${name}" not found`);
    return found;
  }

  #checkVersion(current: Obj, resourceVersion: string | undefined): void {
    if (resourceVersion !== undefined && resourceVersion !== current.metadata.resourceVersion) {
      throw status(409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again');
    }
  }

  #store(key: string, obj: Obj): Obj {
    const stored = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.#version) } };
    this.objects.set(key, stored);
    return stored;
  }
}

function memory(): { resource: MemoryResource; client: TypedClient<Obj> } {
  const resource = new MemoryResource();
  return { resource, client: new TypedClient('Thing', resource) };
}

const thing = (name: string, data = 'x', resourceVersion?: string): Obj => ({
  metadata: { name, namespace: 'ns', ...(resourceVersion ? { resourceVersion } : {}) },
  data,
});

/** Resolves with what the promise rejected with; fails the test if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('TypedClient', () => {
  describe('getOrUndefined', () => {
    it('returns the object, undefined when there is none, and throws every other error', async () => {
      const { resource, client } = memory();
      await client.create(thing('a'));
      expect(await client.getOrUndefined('ns', 'a')).toMatchObject({ data: 'x' });
      expect(await client.getOrUndefined('ns', 'b')).toBeUndefined();
      expect(await client.getOrUndefined('other', 'a')).toBeUndefined();
      resource.failNext = status(403, 'Forbidden', 'forbidden');
      expect(isNotFound(await rejection(client.getOrUndefined('ns', 'a')))).toBe(false);
    });
  });

  describe('create', () => {
    it('creates in the object’s namespace; a taken name fails with AlreadyExists, which is no Conflict', async () => {
      const { resource, client } = memory();
      const created = await client.create(thing('a'));
      expect(created.metadata.resourceVersion).toBe('1');
      expect(resource.objects.has('ns/a')).toBe(true);
      const err = await rejection(client.create(thing('a', 'y')));
      expect(isAlreadyExists(err)).toBe(true);
      expect(isConflict(err)).toBe(false);
      expect(isConflictOrAlreadyExists(err)).toBe(true);
      expect(resource.objects.get('ns/a')?.data).toBe('x');
    });
  });

  describe('replace', () => {
    it('replaces the version it was read at; a stale resourceVersion fails with Conflict, which is no AlreadyExists', async () => {
      const { client } = memory();
      const read = await client.create(thing('a'));
      const first = await client.replace({ ...read, data: 'first' });
      expect(first.metadata.resourceVersion).toBe('2');
      const err = await rejection(client.replace({ ...read, data: 'second' }));
      expect(isConflict(err)).toBe(true);
      expect(isAlreadyExists(err)).toBe(false);
      expect(isConflictOrAlreadyExists(err)).toBe(true);
      expect((await client.getOrUndefined('ns', 'a'))?.data).toBe('first');
    });

    it('refuses, before any request, to replace without a resourceVersion (that would overwrite blindly)', async () => {
      const { resource, client } = memory();
      await client.create(thing('a'));
      await expect(client.replace(thing('a', 'blind'))).rejects.toThrow('replace of Thing a needs the resourceVersion it was read at');
      await expect(client.replaceStatus(thing('a', 'blind'))).rejects.toThrow('replaceStatus of Thing a needs the resourceVersion');
      expect(resource.calls).toEqual(['create']);
    });

    it('fails with NotFound when the object is gone', async () => {
      const { client } = memory();
      expect(isNotFound(await rejection(client.replace(thing('gone', 'x', '7'))))).toBe(true);
    });

    it('replaces the status through the status subresource, optimistically too', async () => {
      const { client } = memory();
      const read = await client.create(thing('a'));
      const written = await client.replaceStatus({ ...read, data: 'ignored', status: 'Ready' });
      expect(written).toMatchObject({ data: 'x', status: 'Ready' });
      expect(isConflict(await rejection(client.replaceStatus({ ...read, status: 'Stale' })))).toBe(true);
    });

    it('says so when the kind has no status subresource', async () => {
      const r = new MemoryResource();
      const withoutStatus: ResourceApi<Obj> = {
        read: (ns, name) => r.read(ns, name),
        list: (ns) => r.list(ns),
        create: (ns, body) => r.create(ns, body),
        replace: (ns, name, body) => r.replace(ns, name, body),
        delete: (ns, name, preconditions) => r.delete(ns, name, preconditions),
      };
      const client = new TypedClient<Obj>('Thing', withoutStatus);
      await expect(client.replaceStatus(thing('a', 'x', '1'))).rejects.toThrow('Thing has no status subresource');
    });
  });

  describe('createOrReplace', () => {
    it('creates when absent, and replaces what is there (whoever wrote it) when the name is taken', async () => {
      const { resource, client } = memory();
      expect((await client.createOrReplace(thing('a', 'ours'))).metadata.resourceVersion).toBe('1');
      resource.objects.set('ns/a', { ...thing('a', 'theirs', '5') });
      const written = await client.createOrReplace(thing('a', 'ours again'));
      expect(written.data).toBe('ours again');
      expect(resource.calls).toEqual(['create', 'create', 'replace']);
    });

    it('is optimistic when the object carries a resourceVersion, and passes on errors other than AlreadyExists', async () => {
      const { resource, client } = memory();
      await client.create(thing('a'));
      await client.replace({ ...thing('a', 'y', '1') });
      expect(isConflict(await rejection(client.createOrReplace(thing('a', 'z', '1'))))).toBe(true);
      resource.failNext = status(403, 'Forbidden', 'secrets is forbidden');
      const err = await rejection(client.createOrReplace(thing('b')));
      expect(isAlreadyExists(err) || isConflict(err)).toBe(false);
      expect(resource.calls.at(-1)).toBe('create');
    });
  });

  describe('deleteIgnoringNotFound', () => {
    it('deletes (true), and is done when it is gone already (false)', async () => {
      const { resource, client } = memory();
      await client.create(thing('a'));
      expect(await client.deleteIgnoringNotFound('ns', 'a')).toBe(true);
      expect(resource.objects.size).toBe(0);
      expect(await client.deleteIgnoringNotFound('ns', 'a')).toBe(false);
    });

    it('fails with Conflict when a precondition no longer holds, and throws every other error', async () => {
      const { resource, client } = memory();
      await client.create(thing('a'));
      expect(isConflict(await rejection(client.deleteIgnoringNotFound('ns', 'a', { uid: 'someone-else' })))).toBe(true);
      expect(await client.deleteIgnoringNotFound('ns', 'a', { uid: 'uid-a' })).toBe(true);
      resource.failNext = status(500, 'InternalError', 'etcd');
      expect(isNotFound(await rejection(client.deleteIgnoringNotFound('ns', 'b')))).toBe(false);
    });
  });
});

interface Seen {
  method: string;
  url: string;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/**
 * A RestClient against a local HTTP server that records every request (its
 * URL as if the cluster were https://k8s.test) and answers with `respond`.
 */
async function fakeServer(respond: (seen: Seen) => [number, unknown] = () => [200, {}]): Promise<{ requests: Seen[]; rest: RestClient }> {
  const requests: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const seen = {
        method: req.method ?? '',
        url: `https://k8s.test${req.url ?? ''}`,
        body: raw ? (JSON.parse(raw) as unknown) : undefined,
        headers: req.headers,
      };
      requests.push(seen);
      const [code, answer] = respond(seen);
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'fake', token: 'the-token' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return { requests, rest: new RestClient(kubeConfig) };
}

const statusBody = (code: number, reason: string): Record<string, unknown> => ({
  kind: 'Status',
  apiVersion: 'v1',
  status: 'Failure',
  code,
  reason,
  message: reason,
});

describe('secretsClient', () => {
  it('hands a page’s continue token on as metadata.continue, for every kind', async () => {
    const { rest } = await fakeServer(() => [200, { items: [{ metadata: { name: 'a' } }], metadata: { resourceVersion: '9', continue: 'next-page' } }]);
    for (const client of [
      secretsClient(rest),
      namespacesClient(rest),
      roleBindingsClient(rest),
      clusterRoleBindingsClient(rest),
      customObjectsClient(rest, 'Thing', { group: 'usher.dev', version: 'v1alpha1', plural: 'things' }),
    ]) {
      const result = await client.list({ limit: 1 });
      expect(result.metadata).toEqual({ resourceVersion: '9', continue: 'next-page' });
    }
    const last = await fakeServer(() => [200, { items: [], metadata: { resourceVersion: '9' } }]);
    expect((await secretsClient(last.rest).list({ limit: 1 })).metadata).toEqual({ resourceVersion: '9' });
  });

  it('reads, creates, replaces and deletes a Secret in its namespace; a list without one spans all namespaces', async () => {
    const { requests, rest } = await fakeServer(({ method }) => [method === 'POST' ? 201 : 200, method === 'GET' ? { items: [] } : {}]);
    const secrets = secretsClient(rest);
    const body: V1Secret = { metadata: { name: 'a', namespace: 'ns', resourceVersion: '3' }, data: { k: 'dg==' } };
    await secrets.create(body);
    await secrets.replace(body);
    await secrets.deleteIgnoringNotFound('ns', 'a');
    await secrets.deleteIgnoringNotFound('ns', 'a', { uid: 'u1' });
    await secrets.list({ labelSelector: 'app=x' });
    await secrets.list({ namespace: 'ns' });
    await secrets.list({ namespace: 'ns', labelSelector: 'app=x', limit: 500, continue: 'tok/en' });
    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      'POST https://k8s.test/api/v1/namespaces/ns/secrets',
      'PUT https://k8s.test/api/v1/namespaces/ns/secrets/a',
      'DELETE https://k8s.test/api/v1/namespaces/ns/secrets/a',
      'DELETE https://k8s.test/api/v1/namespaces/ns/secrets/a',
      'GET https://k8s.test/api/v1/secrets?labelSelector=app%3Dx',
      'GET https://k8s.test/api/v1/namespaces/ns/secrets',
      'GET https://k8s.test/api/v1/namespaces/ns/secrets?labelSelector=app%3Dx&limit=500&continue=tok%2Fen',
    ]);
    expect(requests[1]?.body).toMatchObject({ metadata: { name: 'a', namespace: 'ns', resourceVersion: '3' }, data: { k: 'dg==' } });
    expect(requests[2]?.body).toBeUndefined();
    expect(requests[3]?.body).toEqual({ preconditions: { uid: 'u1' } });
  });

  it('reads the API server’s 404 as undefined and its 409s as AlreadyExists or Conflict', async () => {
    const answers: Record<string, [number, unknown]> = {
      GET: [404, statusBody(404, 'NotFound')],
      POST: [409, statusBody(409, 'AlreadyExists')],
      PUT: [409, statusBody(409, 'Conflict')],
      DELETE: [404, statusBody(404, 'NotFound')],
    };
    const { rest } = await fakeServer(({ method }) => answers[method] ?? [500, {}]);
    const secrets = secretsClient(rest);
    const body: V1Secret = { metadata: { name: 'a', namespace: 'ns', resourceVersion: '3' } };
    expect(await secrets.getOrUndefined('ns', 'a')).toBeUndefined();
    const exists = await rejection(secrets.create(body));
    expect([isAlreadyExists(exists), isConflict(exists)]).toEqual([true, false]);
    const stale = await rejection(secrets.replace(body));
    expect([isAlreadyExists(stale), isConflict(stale)]).toEqual([false, true]);
    expect(await secrets.deleteIgnoringNotFound('ns', 'a')).toBe(false);
  });

  it('wants a namespace', async () => {
    const { requests, rest } = await fakeServer();
    await expect(secretsClient(rest).getOrUndefined(undefined, 'a')).rejects.toThrow('a Secret needs a namespace');
    expect(requests).toEqual([]);
  });

  it('refuses the names URL resolution would rewrite (. and ..), sending nothing', async () => {
    const { requests, rest } = await fakeServer();
    const secrets = secretsClient(rest);
    await expect(secrets.getOrUndefined('ns', '..')).rejects.toThrow('a Secret cannot be named ".."');
    await expect(secrets.deleteIgnoringNotFound('ns', '.')).rejects.toThrow('a Secret cannot be named "."');
    expect(requests).toEqual([]);
  });
});

describe('customObjectsClient', () => {
  const resource = { group: 'usher.dev', version: 'v1alpha1', plural: 'things' };

  it('uses the namespaced endpoints with a namespace and the cluster-wide ones without', async () => {
    const { requests, rest } = await fakeServer(({ method }) => [method === 'POST' ? 201 : 200, { metadata: { name: 'a' } }]);
    const things = customObjectsClient<Obj>(rest, 'Thing', resource);
    const namespaced: Obj = { metadata: { name: 'a', namespace: 'ns', resourceVersion: '1' } };
    const clusterScoped: Obj = { metadata: { name: 'a', resourceVersion: '1' } };
    await things.getOrUndefined('ns', 'a');
    await things.getOrUndefined(undefined, 'a');
    await things.create(namespaced);
    await things.create(clusterScoped);
    await things.replace(namespaced);
    await things.replace(clusterScoped);
    await things.replaceStatus(namespaced);
    await things.replaceStatus(clusterScoped);
    await things.deleteIgnoringNotFound(undefined, 'a', { uid: 'u1' });
    await things.deleteIgnoringNotFound('ns', 'a');
    await things.list();
    await things.list({ namespace: 'ns', labelSelector: 'x=y' });
    await things.list({ limit: 2, continue: 'abc' });
    const base = 'https://k8s.test/apis/usher.dev/v1alpha1';
    expect(requests.map((r) => `${r.method} ${r.url}`)).toEqual([
      `GET ${base}/namespaces/ns/things/a`,
      `GET ${base}/things/a`,
      `POST ${base}/namespaces/ns/things`,
      `POST ${base}/things`,
      `PUT ${base}/namespaces/ns/things/a`,
      `PUT ${base}/things/a`,
      `PUT ${base}/namespaces/ns/things/a/status`,
      `PUT ${base}/things/a/status`,
      `DELETE ${base}/things/a`,
      `DELETE ${base}/namespaces/ns/things/a`,
      `GET ${base}/things`,
      `GET ${base}/namespaces/ns/things?labelSelector=x%3Dy`,
      `GET ${base}/things?limit=2&continue=abc`,
    ]);
    expect(requests[8]?.body).toEqual({ preconditions: { uid: 'u1' } });
  });

  it('reads 404 and the two 409s the same way as for Secrets', async () => {
    const answers: Record<string, [number, unknown]> = {
      GET: [404, statusBody(404, 'NotFound')],
      POST: [409, statusBody(409, 'AlreadyExists')],
      PUT: [409, statusBody(409, 'Conflict')],
    };
    const { rest } = await fakeServer(({ method }) => answers[method] ?? [500, {}]);
    const things = customObjectsClient<Obj>(rest, 'Thing', resource);
    expect(await things.getOrUndefined(undefined, 'a')).toBeUndefined();
    expect(isAlreadyExists(await rejection(things.create({ metadata: { name: 'a' } })))).toBe(true);
    expect(isConflict(await rejection(things.replace({ metadata: { name: 'a', resourceVersion: '1' } })))).toBe(true);
    // createOrReplace: AlreadyExists, then a Conflict on the replace; the Conflict is what surfaces.
    expect(isConflict(await rejection(things.createOrReplace({ metadata: { name: 'a', resourceVersion: '1' } })))).toBe(true);
  });
});
