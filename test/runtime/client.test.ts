// The client helpers without a cluster: the patch request as it would leave
// the process, error decoding from the shapes client-node produces, and where
// the kubeconfig comes from.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import {
  ApiException,
  CustomObjectsApi,
  KubeConfig,
  RequestContext,
  ResponseContext,
  SelfDecodingBody,
  setHeaderOptions,
  wrapHttpLibrary,
  type ConfigurationOptions,
} from '@kubernetes/client-node';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { apiErrorOf, isAlreadyExists, isConflict, isGone, isNotFound, loadKubeConfig, mergePatchOptions } from '../../src/runtime/client.ts';

function kubeConfig(server = 'https://k8s.example.test:6443'): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: false }],
    users: [{ name: 'u', token: 't0ken' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

/** Sends nothing: records the request the client built and answers 200 with `{}`. */
function capture(): { requests: RequestContext[]; options: (base?: ConfigurationOptions) => ConfigurationOptions } {
  const requests: RequestContext[] = [];
  const httpApi = wrapHttpLibrary({
    send: (request: RequestContext) => {
      requests.push(request);
      return Promise.resolve(new ResponseContext(200, { 'content-type': 'application/json' }, new SelfDecodingBody(Promise.resolve(Buffer.from('{}')))));
    },
  });
  return { requests, options: (base) => ({ ...base, httpApi }) };
}

const patch = { group: 'usher.dev', version: 'v1alpha1', namespace: 'ns', plural: 'userinvitations', name: 'inv', body: { status: { phase: 'Pending' } } };

describe('mergePatchOptions', () => {
  it('makes patchNamespacedCustomObjectStatus send application/merge-patch+json with the object as JSON', async () => {
    const api = kubeConfig().makeApiClient(CustomObjectsApi);
    const { requests, options } = capture();
    await api.patchNamespacedCustomObjectStatus(patch, options(mergePatchOptions()));
    const request = requests[0];
    expect(request?.getHttpMethod()).toBe('PATCH');
    expect(request?.getUrl()).toBe('https://k8s.example.test:6443/apis/usher.dev/v1alpha1/namespaces/ns/userinvitations/inv/status');
    expect(request?.getHeaders()['Content-Type']).toBe('application/merge-patch+json');
    expect(JSON.parse(request?.getBody() as string)).toEqual({ status: { phase: 'Pending' } });
  });

  it('is needed: without it the client sends application/json-patch+json (client-node #2434)', async () => {
    const api = kubeConfig().makeApiClient(CustomObjectsApi);
    const { requests, options } = capture();
    await api.patchNamespacedCustomObject(patch, options());
    expect(requests[0]?.getHeaders()['Content-Type']).toBe('application/json-patch+json');
  });

  it('keeps middleware already in the options it extends', async () => {
    const api = kubeConfig().makeApiClient(CustomObjectsApi);
    const { requests, options } = capture();
    await api.patchNamespacedCustomObject(patch, options(mergePatchOptions(setHeaderOptions('X-Trace', 'abc'))));
    expect(requests[0]?.getHeaders()).toMatchObject({ 'Content-Type': 'application/merge-patch+json', 'X-Trace': 'abc' });
  });
});

describe('apiErrorOf', () => {
  const status = (code: number, reason: string, message: string): Record<string, unknown> => ({
    kind: 'Status',
    apiVersion: 'v1',
    status: 'Failure',
    code,
    reason,
    message,
  });

  it('reads an ApiException whose body is the Status as raw JSON text (undeclared status codes)', () => {
    const err = new ApiException(404, 'Unknown API Status Code!', JSON.stringify(status(404, 'NotFound', 'configmaps "x" not found')), {});
    expect(apiErrorOf(err)).toEqual({ code: 404, reason: 'NotFound', message: 'configmaps "x" not found' });
    expect(isNotFound(err)).toBe(true);
    expect(isConflict(err)).toBe(false);
  });

  it('reads an ApiException whose body is already an object', () => {
    const err = new ApiException(409, 'Conflict', status(409, 'AlreadyExists', 'userinvitations "a" already exists'), {});
    expect(apiErrorOf(err)).toEqual({ code: 409, reason: 'AlreadyExists', message: 'userinvitations "a" already exists' });
    expect(isAlreadyExists(err)).toBe(true);
    expect(isConflict(err)).toBe(false);
  });

  it('tells a Conflict from AlreadyExists', () => {
    const err = new ApiException(409, 'Conflict', status(409, 'Conflict', 'the object has been modified'), {});
    expect(isConflict(err)).toBe(true);
    expect(isAlreadyExists(err)).toBe(false);
  });

  it('falls back to the HTTP code when the body is not a Status', () => {
    expect(apiErrorOf(new ApiException(401, 'Unauthorized', undefined, {}))).toMatchObject({ code: 401 });
    expect(apiErrorOf(new ApiException(502, 'Bad Gateway', '<html>bad gateway</html>', {})).code).toBe(502);
  });

  it('reads a watch error (statusCode) and a watch ERROR event (a Status object)', () => {
    expect(apiErrorOf(Object.assign(new Error('Gone'), { statusCode: 410 }))).toEqual({ code: 410, message: 'Gone' });
    const event = status(410, 'Expired', 'too old resource version: 1 (200)');
    expect(apiErrorOf(event)).toEqual({ code: 410, reason: 'Expired', message: 'too old resource version: 1 (200)' });
    expect(isGone(event)).toBe(true);
  });

  it('does not mistake a DOMException’s legacy code for an HTTP status', () => {
    const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError');
    expect(apiErrorOf(timeout)).toEqual({ message: 'TimeoutError: The operation was aborted due to timeout' });
  });

  it('surfaces the cause of undici’s "fetch failed"', () => {
    const err = new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:6443') });
    expect(apiErrorOf(err)).toEqual({ message: 'fetch failed: connect ECONNREFUSED 127.0.0.1:6443' });
  });

  it('copes with anything thrown', () => {
    expect(apiErrorOf('boom')).toEqual({ message: 'boom' });
    expect(apiErrorOf(undefined)).toEqual({ message: 'undefined' });
    expect(apiErrorOf({ weird: true })).toEqual({ message: '{"weird":true}' });
  });
});

describe('loadKubeConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'usher-kubeconfig-'));
  const file = (name: string, server: string): string => {
    const path = join(dir, name);
    writeFileSync(
      path,
      `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: '${server}'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`,
    );
    return path;
  };
  const explicit = file('explicit', 'https://explicit.test');
  const fromEnv = file('env', 'https://env.test');
  const home = join(dir, 'home');
  mkdirSync(join(home, '.kube'), { recursive: true });
  writeFileSync(
    join(home, '.kube', 'config'),
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'https://home.test'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: ctx, context: {cluster: c, user: u}}]
current-context: ctx
`,
  );
  const sa = join(dir, 'pod');
  mkdirSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount'), { recursive: true });
  writeFileSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/token'), 'sa-token');
  writeFileSync(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/namespace'), 'usher-system');

  afterEach(() => {
    vi.unstubAllEnvs();
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const inPod = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };

  it('prefers an explicit path to everything else', () => {
    expect(loadKubeConfig(explicit, { KUBECONFIG: fromEnv, ...inPod }, { homeDir: home, inClusterPathPrefix: sa }).getCurrentCluster()?.server).toBe(
      'https://explicit.test',
    );
    expect(loadKubeConfig(explicit).getCurrentCluster()?.server).toBe('https://explicit.test');
  });

  it('then KUBECONFIG', () => {
    expect(loadKubeConfig(undefined, { KUBECONFIG: fromEnv, ...inPod }, { homeDir: home, inClusterPathPrefix: sa }).getCurrentCluster()?.server).toBe(
      'https://env.test',
    );
  });

  it('merges the files a KUBECONFIG list names', () => {
    const other = join(dir, 'other');
    writeFileSync(
      other,
      `apiVersion: v1
kind: Config
clusters: [{name: c2, cluster: {server: 'https://other.test'}}]
users: [{name: u2, user: {token: t}}]
contexts: [{name: ctx2, context: {cluster: c2, user: u2}}]
`,
    );
    const kc = loadKubeConfig(undefined, { KUBECONFIG: [fromEnv, '', other].join(delimiter) }, { homeDir: home });
    expect(kc.getClusters().map((c) => c.server)).toEqual(['https://env.test', 'https://other.test']);
    expect(kc.getCurrentCluster()?.server).toBe('https://env.test');
  });

  it('then the pod’s service account, before ~/.kube/config', () => {
    const kc = loadKubeConfig(undefined, { KUBECONFIG: '', ...inPod }, { homeDir: home, inClusterPathPrefix: sa });
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:443');
    expect(kc.getCurrentCluster()?.caFile).toBe(join(sa, 'var/run/secrets/kubernetes.io/serviceaccount/ca.crt'));
    expect(kc.getContextObject(kc.getCurrentContext())?.namespace).toBe('usher-system');
  });

  it('builds the in-cluster address as client-node does (IPv6 in brackets, http on 80/8080/8001)', () => {
    const server = (env: Record<string, string>): string | undefined =>
      loadKubeConfig(undefined, env, { homeDir: home, inClusterPathPrefix: sa }).getCurrentCluster()?.server;
    expect(server({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' })).toBe('https://[fd00::1]:6443');
    expect(server({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '8080' })).toBe('http://10.0.0.1:8080');
    expect(server({ KUBERNETES_SERVICE_HOST: '10.0.0.1' })).toBe('https://10.0.0.1:443');
  });

  it('then ~/.kube/config', () => {
    expect(loadKubeConfig(undefined, {}, { homeDir: home, inClusterPathPrefix: sa }).getCurrentCluster()?.server).toBe('https://home.test');
    // In a pod's environment but without its service account files.
    expect(loadKubeConfig(undefined, inPod, { homeDir: home, inClusterPathPrefix: join(dir, 'nowhere') }).getCurrentCluster()?.server).toBe(
      'https://home.test',
    );
  });

  it('reads the environment it is given, not process.env', () => {
    vi.stubEnv('KUBECONFIG', fromEnv);
    vi.stubEnv('KUBERNETES_SERVICE_HOST', '10.0.0.1');
    vi.stubEnv('KUBERNETES_SERVICE_PORT', '443');
    expect(loadKubeConfig(undefined, {}, { homeDir: home, inClusterPathPrefix: sa }).getCurrentCluster()?.server).toBe('https://home.test');
    expect(
      loadKubeConfig(
        undefined,
        { KUBERNETES_SERVICE_HOST: '10.9.9.9', KUBERNETES_SERVICE_PORT: '443' },
        { homeDir: home, inClusterPathPrefix: sa },
      ).getCurrentCluster()?.server,
    ).toBe('https://10.9.9.9:443');
  });

  it('fails rather than guess when there is none', () => {
    expect(() => loadKubeConfig(undefined, {}, { homeDir: join(dir, 'nowhere') })).toThrow(/no kubeconfig/);
  });
});
