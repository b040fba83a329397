// The chart installed for real into the test control plane (release usher in
// usher-system; no kubelet, so its pods never run): the ServiceAccounts it
// makes are the harness's operator and accept identities, so the chart's RBAC
// is what those kubeconfigs can do (together with the harness's own binding of
// the same chart's RBAC, rendered with linkDisclosure=Secret; the exact matrix
// per identity and setting is rbac.int.test.ts); the admission policy judges
// real invitations; helm upgrade and uninstall behave (the CRDs stay).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import { decide } from '../../src/invitation/decide.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { LeaderElector } from '../../src/runtime/leader-election.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { CHART, helm, helmOk, ROOT, useHelm, valuesFile, type PolicyRule } from './support.ts';

const RELEASE = 'usher';
const SYSTEM = 'usher-system';
const suffix = Math.random().toString(16).slice(2, 8);
// The policy is bound to namespaces carrying this label only, so that it judges
// this file's invitations and nobody else's while it is installed.
const SELECTOR = { 'usher.dev/chart-test': suffix };
const acme = `acme-${suffix}`;
const globex = `globex-${suffix}`;
const unlabelled = `plain-${suffix}`;
const platform = `platform-${suffix}`;
const CRDS = ['userinvitations.usher.dev', 'users.usher.dev'];
let createdSystemNamespace = false;
useHelm();

const values = {
  config: { tenancy: { instanceNamespaces: [platform] } },
  admissionPolicy: { namespaceSelector: { matchLabels: SELECTOR } },
};

beforeAll(async () => {
  createdSystemNamespace = (await kubectl(['get', 'namespace', SYSTEM])).code !== 0;
  const selector = Object.entries(SELECTOR).map(([k, v]) => `${k}=${v}`);
  for (const [name, tenant] of [
    [acme, 'acme'],
    [globex, 'globex'],
    [unlabelled, undefined],
    [platform, undefined],
  ] as const) {
    await kubectlOk(['create', 'namespace', name]);
    await kubectlOk(['label', 'namespace', name, ...selector, ...(tenant ? [`usher.dev/tenant=${tenant}`] : [])]);
  }
  // The test setup applied crds/ before Helm came: hand them over to the release, as
  // docs/install.md tells anyone who installed the CRDs by hand to do.
  for (const crd of CRDS) {
    await kubectlOk(['label', 'crd', crd, 'app.kubernetes.io/managed-by=Helm', '--overwrite']);
    await kubectlOk(['annotate', 'crd', crd, `meta.helm.sh/release-name=${RELEASE}`, `meta.helm.sh/release-namespace=${SYSTEM}`, '--overwrite']);
  }
  await helmOk(['install', RELEASE, CHART, '--namespace', SYSTEM, '--create-namespace', '-f', valuesFile(values)], { cluster: true });
});

afterAll(async () => {
  await helm(['uninstall', RELEASE, '--namespace', SYSTEM, '--wait'], { cluster: true });
  await deleteNamespaces(acme, globex, unlabelled, platform, createdSystemNamespace ? SYSTEM : '');
});

describe('helm install', () => {
  it('deploys the release with its objects, and takes over the CRDs', async () => {
    const status = JSON.parse(await helmOk(['status', RELEASE, '--namespace', SYSTEM, '-o', 'json'], { cluster: true })) as { info: { status: string } };
    expect(status.info.status).toBe('deployed');
    type Deployment = { spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { args: string[] }[] } } } };
    for (const [name, serviceAccount, component] of [
      ['usher', 'usher', 'controller'],
      ['usher-accept', 'usher-accept', 'accept'],
    ] as const) {
      const deployment = JSON.parse(await kubectlOk(['get', 'deployment', name, '-n', SYSTEM, '-o', 'json'])) as Deployment;
      expect(deployment.spec.replicas, name).toBe(2);
      expect(deployment.spec.template.spec.serviceAccountName, name).toBe(serviceAccount);
      expect(deployment.spec.template.spec.containers[0]?.args.slice(0, 2), name).toEqual(['--component', component]);
    }
    const objects = [
      'serviceaccount/usher',
      'serviceaccount/usher-accept',
      'configmap/usher',
      'service/usher',
      'service/usher-metrics',
      'poddisruptionbudget/usher',
      'poddisruptionbudget/usher-accept',
    ];
    for (const object of [...objects, ...['usher', 'usher-accept', 'usher-leader-election'].flatMap((name) => [`role/${name}`, `rolebinding/${name}`])]) {
      expect((await kubectl(['get', object, '-n', SYSTEM])).code, object).toBe(0);
    }
    for (const crd of CRDS) {
      const object = JSON.parse(await kubectlOk(['get', 'crd', crd, '-o', 'json'])) as {
        metadata: { annotations: Record<string, string>; labels: Record<string, string> };
      };
      expect(object.metadata.annotations['helm.sh/resource-policy']).toBe('keep');
      expect(object.metadata.labels['app.kubernetes.io/instance']).toBe(RELEASE);
    }
  });

  it('makes ClusterRoles without any wildcard, and no Secrets in them by default', async () => {
    for (const name of ['usher', 'usher-accept']) {
      const role = JSON.parse(await kubectlOk(['get', 'clusterrole', name, '-o', 'json'])) as { rules: PolicyRule[] };
      expect(role.rules.length, name).toBeGreaterThan(0);
      expect(JSON.stringify(role.rules), name).not.toContain('*');
      expect(
        role.rules.flatMap((r) => r.resources ?? []),
        name,
      ).not.toContain('secrets');
    }
  });
});

describe.skipIf(!inject('localControlPlane'))(
  'the chart’s RBAC, as the operator and accept identities (system:serviceaccount:usher-system:usher and :usher-accept)',
  () => {
    /** `kubectl auth can-i` as the identity: a SelfSubjectAccessReview, answered by the real authorizer. */
    async function can(as: 'operator' | 'accept', args: string): Promise<boolean> {
      const result = await kubectl(['auth', 'can-i', ...args.split(' ')], { as });
      return result.code === 0 && result.stdout.trim() === 'yes';
    }
    async function refused(as: 'operator' | 'accept', checks: string[], want: boolean): Promise<string[]> {
      const answers = await Promise.all(checks.map(async (a) => [a, await can(as, a)] as const));
      return answers.filter(([, yes]) => yes !== want).map(([a]) => a);
    }

    const OPERATOR_NEEDS = [
      // The invitation informer (all namespaces), a read by name, and status written with PUT.
      'list userinvitations.usher.dev -A',
      'watch userinvitations.usher.dev -A',
      `get userinvitations.usher.dev -n ${acme}`,
      `update userinvitations.usher.dev --subresource=status -n ${acme}`,
      // The usher.dev/membership finalizer.
      `update userinvitations.usher.dev -n ${acme}`,
      // Users: informer, create, update to add, change and remove memberships, delete one left with none.
      'list users.usher.dev',
      'watch users.usher.dev',
      'get users.usher.dev',
      'create users.usher.dev',
      'update users.usher.dev',
      'delete users.usher.dev',
      // Records in Usher's namespace.
      `list secrets -n ${SYSTEM}`,
      `watch secrets -n ${SYSTEM}`,
      `get secrets -n ${SYSTEM}`,
      `create secrets -n ${SYSTEM}`,
      `update secrets -n ${SYSTEM}`,
      `delete secrets -n ${SYSTEM}`,
      // Tenant labels.
      'list namespaces',
      'watch namespaces',
      'get namespaces',
      `create events.events.k8s.io -n ${acme}`,
      // Leader election: its own Lease only.
      `get leases.coordination.k8s.io/usher-leader -n ${SYSTEM}`,
      `update leases.coordination.k8s.io/usher-leader -n ${SYSTEM}`,
      `create leases.coordination.k8s.io -n ${SYSTEM}`,
    ];
    const ACCEPT_NEEDS = [
      `get userinvitations.usher.dev -n ${acme}`,
      'list userinvitations.usher.dev -A',
      'watch userinvitations.usher.dev -A',
      'get namespaces',
      'list namespaces',
      'watch namespaces',
      'get users.usher.dev',
      'create users.usher.dev',
      'update users.usher.dev',
      'delete users.usher.dev',
      `list secrets -n ${SYSTEM}`,
      `watch secrets -n ${SYSTEM}`,
      `get secrets -n ${SYSTEM}`,
      `create secrets -n ${SYSTEM}`,
      `update secrets -n ${SYSTEM}`,
    ];
    // A sample of what neither may do (rbac.int.test.ts asks every neighbouring call of each identity).
    const NEITHER = [
      'delete namespaces',
      `get configmaps -n ${SYSTEM}`,
      `create userinvitations.usher.dev -n ${acme}`,
      `patch userinvitations.usher.dev --subresource=status -n ${acme}`,
      // (update users/status: granted with identity.provider keycloak only, which the harness's RBAC
      // turns on for the Keycloak tests and binds to this same ServiceAccount; render.int.test.ts shows the default lacks it.)
      `delete secrets -n ${acme}`,
      `deletecollection secrets -n ${SYSTEM}`,
      `update leases.coordination.k8s.io/other -n ${SYSTEM}`,
      `create events -n ${acme}`,
      `create pods -n ${SYSTEM}`,
      // (create clusterrolebindings: granted with config.rbac, which the harness's RBAC turns on; what it may bind is limited below.)
      'bind clusterroles.rbac.authorization.k8s.io/cluster-admin',
      'escalate clusterroles.rbac.authorization.k8s.io',
      'update customresourcedefinitions.apiextensions.k8s.io',
    ];
    const NOT_THE_PAGES = [
      `get secrets -n ${acme}`,
      'list secrets -A',
      `delete secrets -n ${SYSTEM}`,
      `update userinvitations.usher.dev --subresource=status -n ${acme}`,
      `create events.events.k8s.io -n ${acme}`,
      `get leases.coordination.k8s.io/usher-leader -n ${SYSTEM}`,
      `create leases.coordination.k8s.io -n ${SYSTEM}`,
    ];

    it('operator can do everything the controller needs, and nothing beyond it', async () => {
      expect(await refused('operator', OPERATOR_NEEDS, true)).toEqual([]);
      expect(await refused('operator', NEITHER, false)).toEqual([]);
    });

    it('accept can do everything the acceptance page needs, and nothing beyond it', async () => {
      expect(await refused('accept', ACCEPT_NEEDS, true)).toEqual([]);
      expect(await refused('accept', [...NEITHER, ...NOT_THE_PAGES], false)).toEqual([]);
    });

    it('is what real requests get: Usher’s own Secrets listed in its namespace, a tenant’s Secrets and a ConfigMap refused to the page', async () => {
      const list = await kubectl(['get', 'secrets', '-n', SYSTEM, '-l', 'app.kubernetes.io/managed-by=usher', '-o', 'name'], { as: 'accept' });
      expect(list.stderr).toBe('');
      expect(list.code).toBe(0);
      const tenant = await kubectl(['get', 'secrets', '-n', acme], { as: 'accept' });
      expect(tenant.code).not.toBe(0);
      expect(tenant.stderr).toContain(
        `User "system:serviceaccount:usher-system:usher-accept" cannot list resource "secrets" in API group "" in the namespace "${acme}"`,
      );
      const refusedConfigMap = await kubectl(['get', 'configmap', 'usher', '-n', SYSTEM], { as: 'operator' });
      expect(refusedConfigMap.code).not.toBe(0);
      expect(refusedConfigMap.stderr).toContain(
        'User "system:serviceaccount:usher-system:usher" cannot get resource "configmaps" in API group "" in the namespace "usher-system"',
      );
    });

    it('lets the leader elector create, renew and release its Lease with the chart’s Role', async () => {
      const started: string[] = [];
      const elector = new LeaderElector({
        kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
        namespace: SYSTEM,
        name: 'usher-leader',
        identity: 'usher-pod-0',
        leaseDurationMs: 6000,
        renewDeadlineMs: 4000,
        retryPeriodMs: 500,
        onStartedLeading: () => {
          started.push('started');
        },
        onStoppedLeading: () => undefined,
      });
      void elector.run();
      try {
        for (let i = 0; i < 100 && !elector.isLeader(); i++) await new Promise((r) => setTimeout(r, 100));
        expect(elector.isLeader()).toBe(true);
        // A few renewals, each a GET and a PUT as the operator.
        await new Promise((r) => setTimeout(r, 1500));
        expect(elector.isLeader()).toBe(true);
        expect(started).toEqual(['started']);
      } finally {
        await elector.stop();
      }
      const lease = JSON.parse(await kubectlOk(['get', 'lease', 'usher-leader', '-n', SYSTEM, '-o', 'json'])) as {
        spec: { holderIdentity?: string; leaseDurationSeconds: number };
      };
      expect(lease.spec.holderIdentity ?? '').toBe('');
      expect(lease.spec.leaseDurationSeconds).toBe(1);
    });
  },
);

describe('the ValidatingAdmissionPolicy', () => {
  const config = parseConfig(`usher:\n  tenancy:\n    instanceNamespaces: [${platform}]\n`, { env: {} });

  function example(file: string): UserInvitation {
    return load(readFileSync(join(ROOT, 'examples', file), 'utf8')) as UserInvitation;
  }

  const apply = (namespace: string, invitation: UserInvitation) => kubectl(['apply', '-n', namespace, '-f', '-'], { input: JSON.stringify(invitation) });

  /** What the controller says about the same invitation in the same namespace (decide.ts), without its last sentence. */
  function controllerVerdict(namespace: string, invitation: UserInvitation, namespaceTenant: string | undefined): string {
    const plan = decide({
      invitation: { ...invitation, metadata: { ...invitation.metadata, namespace, uid: 'u' } },
      records: [],
      link: undefined,
      namespaceTenant,
      user: undefined,
      config,
      now: new Date(),
    });
    const ready = plan.status.conditions?.find((c) => c.type === 'Ready');
    expect(ready?.reason).toBe('Forbidden');
    return (ready?.message ?? '').replace(/ Nothing was issued\.$/, '');
  }

  /** The policy is in force once the API server has loaded it (its informer lags the create a little). */
  async function refusal(namespace: string, invitation: UserInvitation): Promise<string> {
    for (let i = 0; ; i++) {
      const result = await apply(namespace, invitation);
      if (result.code !== 0 || i >= 50) {
        expect(result.code, result.stdout).not.toBe(0);
        return result.stderr;
      }
      // Admitted before the policy was loaded: take it back and try again.
      await kubectlOk(['delete', 'userinvitation', invitation.metadata.name, '-n', namespace, '--wait']);
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  it('refuses an invitation into another tenant’s namespace, in the controller’s words', async () => {
    const invitation = example('tenant-developer.yaml'); // tenant acme
    const message = await refusal(globex, invitation);
    const verdict = controllerVerdict(globex, invitation, 'globex');
    expect(verdict).toBe(`Namespace ${globex} belongs to tenant globex (label usher.dev/tenant), so it may only invite into globex, not acme.`);
    expect(message).toContain(
      `userinvitations.usher.dev "jane-doe" is forbidden: ValidatingAdmissionPolicy 'usher-who-may-invite-whom' with binding 'usher-who-may-invite-whom' denied request: ${verdict}`,
    );
  });

  it('refuses a tenant invitation from a namespace that belongs to no tenant', async () => {
    const invitation = example('sso-direct.yaml');
    const message = await refusal(unlabelled, invitation);
    const verdict = controllerVerdict(unlabelled, invitation, undefined);
    expect(verdict).toBe(`Namespace ${unlabelled} has no usher.dev/tenant label, so it may not invite into tenant acme.`);
    expect(message).toContain(`denied request: ${verdict}`);
  });

  it('refuses an Instance-scope invitation from a namespace not in instanceNamespaces', async () => {
    const invitation = example('instance-admin.yaml');
    const message = await refusal(acme, invitation);
    const verdict = controllerVerdict(acme, invitation, 'acme');
    expect(verdict).toBe(
      `Instance-scope invitations are only accepted from the namespaces in usher.tenancy.instanceNamespaces, and ${acme} is not one of them.`,
    );
    expect(message).toContain(`denied request: ${verdict}`);
  });

  it('admits every shared example in a properly labelled namespace', async () => {
    const files = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'));
    // examples/ also holds the configuration file: only its UserInvitations.
    const invitations = files
      .map((f) => [f, load(readFileSync(join(ROOT, 'examples', f), 'utf8')) as { kind?: string }] as const)
      .filter((entry): entry is readonly [string, UserInvitation] => entry[1].kind === 'UserInvitation');
    expect(invitations.length).toBeGreaterThanOrEqual(4);
    for (const [file, invitation] of invitations) {
      const namespace = invitation.spec.scope === 'Instance' ? platform : acme;
      const result = await apply(namespace, invitation);
      expect(result.stderr, file).toBe('');
      expect(result.code, file).toBe(0);
    }
    const names = (await kubectlOk(['get', 'userinvitations', '-n', acme, '-o', 'name'])).trim().split('\n').sort();
    expect(names).toEqual(['userinvitation.usher.dev/contractor', 'userinvitation.usher.dev/jane-doe', 'userinvitation.usher.dev/sam-sso']);
  });

  it('judges a change of spec too, but lets labels and annotations through', async () => {
    // jane-doe was admitted into acme by the previous test.
    const moved = await kubectl(['patch', 'userinvitation', 'jane-doe', '-n', acme, '--type=merge', '-p', '{"spec":{"tenant":"globex"}}']);
    expect(moved.code).not.toBe(0);
    expect(moved.stderr).toContain(
      `denied request: Namespace ${acme} belongs to tenant acme (label usher.dev/tenant), so it may only invite into acme, not globex.`,
    );
    // Even after the namespace changed tenant, a reissue request (an annotation) is not blocked here.
    await kubectlOk(['label', 'namespace', acme, 'usher.dev/tenant=initech', '--overwrite']);
    try {
      await kubectlOk(['annotate', 'userinvitation', 'jane-doe', '-n', acme, 'usher.dev/reissue-requested-at=2025-01-01T00:00:00Z']);
    } finally {
      await kubectlOk(['label', 'namespace', acme, 'usher.dev/tenant=acme', '--overwrite']);
    }
  });

  it('leaves namespaces outside its selector to the controller', async () => {
    const outside = `outside-${suffix}`;
    await kubectlOk(['create', 'namespace', outside]);
    try {
      const result = await apply(outside, example('tenant-developer.yaml'));
      expect(result.code).toBe(0);
    } finally {
      await deleteNamespaces(outside);
    }
  });
});

describe('helm upgrade and uninstall', () => {
  it('upgrades in place (the CRDs are templates, so they are upgraded too)', async () => {
    await helmOk(['upgrade', RELEASE, CHART, '--namespace', SYSTEM, '-f', valuesFile({ ...values, replicaCount: 3, accept: { replicaCount: 4 } })], {
      cluster: true,
    });
    const status = JSON.parse(await helmOk(['status', RELEASE, '--namespace', SYSTEM, '-o', 'json'], { cluster: true })) as {
      version: number;
      info: { status: string };
    };
    expect(status).toMatchObject({ version: 2, info: { status: 'deployed' } });
    expect(await kubectlOk(['get', 'deployment', 'usher', '-n', SYSTEM, '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
    expect(await kubectlOk(['get', 'deployment', 'usher-accept', '-n', SYSTEM, '-o', 'jsonpath={.spec.replicas}'])).toBe('4');
    const manifest = await helmOk(['get', 'manifest', RELEASE, '--namespace', SYSTEM], { cluster: true });
    expect(manifest).toContain('kind: CustomResourceDefinition');
  });

  it('uninstalls everything but the CRDs (and so every invitation stays)', async () => {
    await helmOk(['uninstall', RELEASE, '--namespace', SYSTEM, '--wait'], { cluster: true });
    for (const crd of CRDS) expect((await kubectl(['get', 'crd', crd])).code, crd).toBe(0);
    expect((await kubectl(['get', 'userinvitation', 'jane-doe', '-n', acme])).code).toBe(0);
    for (const object of [
      'clusterrole/usher',
      'clusterrolebinding/usher',
      'clusterrole/usher-accept',
      'clusterrolebinding/usher-accept',
      'validatingadmissionpolicy/usher-who-may-invite-whom',
      'validatingadmissionpolicybinding/usher-who-may-invite-whom',
    ]) {
      const result = await kubectl(['get', object]);
      expect(result.stderr, object).toContain('NotFound');
    }
    for (const deployment of ['usher', 'usher-accept'])
      expect((await kubectl(['get', 'deployment', deployment, '-n', SYSTEM])).stderr, deployment).toContain('NotFound');
  });
});
