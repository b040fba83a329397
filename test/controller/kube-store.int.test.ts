// No field lost on the way through the caches: the controller writes an
// invitation back from its cache (the finalizer is a PUT of the cached object)
// and a record from its decoded cached copy (each mail attempt), so whatever
// the API server holds beside what Usher reads (kubectl's last-applied
// annotation, someone's labels and annotations, an ownerReference, a payload
// field of a newer Usher) must be there afterwards as before.
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Controller } from '../../src/controller/controller.ts';
import { MEMBERSHIP_FINALIZER } from '../../src/invitation/decide.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';

const suffix = Math.random().toString(16).slice(2, 8);
const ns = `lean-${suffix}`;

async function getInvitation(name: string): Promise<UserInvitation> {
  return JSON.parse(await kubectlOk(['get', 'userinvitation', name, '-n', ns, '-o', 'json'])) as UserInvitation;
}

describe('the controller’s lean caches', () => {
  let controller: Controller;

  beforeAll(async () => {
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['label', 'namespace', ns, 'usher.dev/tenant=acme']);
    const config = parseConfig('usher:\n  baseUrl: http://usher.test\n', { source: 'test-config.yaml', env: {} });
    controller = new Controller({
      kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
      config,
      log: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    });
    await controller.start();
  });

  afterAll(async () => {
    await controller.stop();
    await deleteNamespaces(ns);
  });

  it('keeps every field of an invitation it writes back from the cache (the finalizer PUT)', async () => {
    const owner = JSON.parse(await kubectlOk(['create', 'configmap', 'owner', '-n', ns, '-o', 'json'])) as { metadata: { uid: string } };
    const doc = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'UserInvitation',
      metadata: {
        name: 'kept',
        namespace: ns,
        labels: { 'example.com/team': 'web', 'app.kubernetes.io/part-of': 'onboarding' },
        annotations: { 'example.com/ticket': 'OPS-1234', 'example.com/long': 'x'.repeat(2000) },
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata.uid }],
      },
      spec: { email: 'kept@example.com', tenant: 'acme', groups: ['devs'], roles: [{ name: 'developer', namespaces: ['acme.web'] }], expireAfter: 'P3D' },
    };
    // kubectl apply: the last-applied-configuration annotation, as GitOps tools leave it.
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(doc) });
    const waited = await kubectl(['wait', '--for=jsonpath={.status.phase}=Pending', 'userinvitation/kept', '-n', ns, '--timeout=30s']);
    expect(waited.code, waited.stderr).toBe(0);
    // Compared with what was applied, not with a read (the finalizer may be on before any read).
    const after = await getInvitation('kept');
    expect(after.metadata.finalizers).toContain(MEMBERSHIP_FINALIZER);
    expect(after.metadata.labels).toEqual(doc.metadata.labels);
    const lastApplied = after.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'];
    expect(lastApplied && (JSON.parse(lastApplied) as typeof doc).spec).toEqual(doc.spec);
    expect(after.metadata.annotations).toEqual({ ...doc.metadata.annotations, 'kubectl.kubernetes.io/last-applied-configuration': lastApplied });
    expect(after.metadata.ownerReferences).toEqual(doc.metadata.ownerReferences);
    expect(after.spec).toMatchObject(doc.spec);
  });
});
