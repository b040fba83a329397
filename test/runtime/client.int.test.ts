// The client helpers against the real API server: a merge patch of a
// UserInvitation's status through the status subresource, and apiErrorOf() on
// the errors the server really sends.
import { CoreV1Api, CustomObjectsApi, V1ConfigMap, V1ObjectMeta, type KubeConfig } from '@kubernetes/client-node';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { API_VERSION, GROUP, INVITATION_KIND, INVITATION_PLURAL, VERSION, type UserInvitation } from '../../src/api/types.ts';
import { apiErrorOf, isAlreadyExists, isConflict, isNotFound, loadKubeConfig, mergePatchOptions } from '../../src/runtime/client.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';

const ns = useNamespace('client');
let kc: KubeConfig;
let custom: CustomObjectsApi;
let core: CoreV1Api;

beforeAll(() => {
  kc = loadKubeConfig(inject('kubeconfigs').admin);
  custom = kc.makeApiClient(CustomObjectsApi);
  core = kc.makeApiClient(CoreV1Api);
});

const invitation = (name: string): UserInvitation => ({
  apiVersion: API_VERSION,
  kind: INVITATION_KIND,
  metadata: { name },
  spec: { email: 'a@example.com', tenant: 'acme', groups: ['g'] },
});

const target = (name: string) => ({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL, name });

/** A ConfigMap as the generated client wants it: its own class instances, not look-alike literals. */
function configMap(name: string, data: Record<string, string>): V1ConfigMap {
  const cm = new V1ConfigMap();
  cm.metadata = new V1ObjectMeta();
  cm.metadata.name = name;
  cm.data = data;
  return cm;
}

/** Catches what the promise rejects with; fails the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

describe('mergePatchOptions against the API server', () => {
  it('merge-patches a UserInvitation’s status through patchNamespacedCustomObjectStatus', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL, body: invitation('patched') });
    const patched = (await custom.patchNamespacedCustomObjectStatus(
      { ...target('patched'), body: { status: { phase: 'Pending' } } },
      mergePatchOptions(),
    )) as UserInvitation;
    expect(patched.status?.phase).toBe('Pending');
    // Read back independently: stored, and the spec untouched (a merge patch, not a replace).
    const stored = JSON.parse(await kubectlOk(['get', 'userinvitation', 'patched', '-n', ns(), '-o', 'json'])) as UserInvitation;
    expect(stored.status?.phase).toBe('Pending');
    expect(stored.spec).toMatchObject({ email: 'a@example.com', tenant: 'acme', groups: ['g'] });

    // A second merge patch adds to the status rather than replacing it.
    await custom.patchNamespacedCustomObjectStatus({ ...target('patched'), body: { status: { tenant: 'acme' } } }, mergePatchOptions());
    const again = (await custom.getNamespacedCustomObjectStatus(target('patched'))) as UserInvitation;
    expect(again.status).toMatchObject({ phase: 'Pending', tenant: 'acme' });
  });

  it('is what makes it work: the same call without it is refused', async () => {
    await custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL, body: invitation('unpatched') });
    const err = await rejection(custom.patchNamespacedCustomObjectStatus({ ...target('unpatched'), body: { status: { phase: 'Pending' } } }));
    // The client sent application/json-patch+json, and a JSON patch must be a list of operations.
    expect(apiErrorOf(err)).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect(apiErrorOf(err).message).toContain('jsonPatchOp');
    const stored = (await custom.getNamespacedCustomObject(target('unpatched'))) as UserInvitation;
    expect(stored.status?.phase).toBeUndefined();
  });
});

describe('apiErrorOf against the API server', () => {
  it('reads NotFound', async () => {
    const err = await rejection(custom.getNamespacedCustomObject(target('missing')));
    expect(apiErrorOf(err)).toMatchObject({ code: 404, reason: 'NotFound' });
    expect(apiErrorOf(err).message).toContain('"missing" not found');
    expect(isNotFound(err)).toBe(true);
  });

  it('reads AlreadyExists', async () => {
    const body = configMap('twice', { k: 'v' });
    await core.createNamespacedConfigMap({ namespace: ns(), body });
    const err = await rejection(core.createNamespacedConfigMap({ namespace: ns(), body }));
    expect(apiErrorOf(err)).toMatchObject({ code: 409, reason: 'AlreadyExists' });
    expect(isAlreadyExists(err)).toBe(true);
    expect(isConflict(err)).toBe(false);
  });

  it('reads a Conflict from an update with a stale resourceVersion', async () => {
    await core.createNamespacedConfigMap({ namespace: ns(), body: configMap('stale', { k: '1' }) });
    const stale = await core.readNamespacedConfigMap({ namespace: ns(), name: 'stale' });
    const fresh = await core.readNamespacedConfigMap({ namespace: ns(), name: 'stale' });
    fresh.data = { k: '2' };
    await core.replaceNamespacedConfigMap({ namespace: ns(), name: 'stale', body: fresh });
    stale.data = { k: '3' };
    const err = await rejection(core.replaceNamespacedConfigMap({ namespace: ns(), name: 'stale', body: stale }));
    expect(apiErrorOf(err)).toMatchObject({ code: 409, reason: 'Conflict' });
    expect(isConflict(err)).toBe(true);
  });

  it('reads Invalid, with the server’s message naming the field', async () => {
    const bad = { ...invitation('bad'), spec: { email: 'not-an-email', tenant: 'acme' } };
    const err = await rejection(custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns(), plural: INVITATION_PLURAL, body: bad }));
    expect(apiErrorOf(err)).toMatchObject({ code: 422, reason: 'Invalid' });
    expect(apiErrorOf(err).message).toContain('spec.email');
  });
});
