// The Helm chart as rendered: lint, the objects and their settings (two
// Deployments, controller and acceptance page, each with its own
// ServiceAccount), the configuration files read back by Usher's own loader,
// least-privilege RBAC per identity, the CRDs equal to crds/, values typos
// refused, and the manifests accepted by the real API server (server-side dry
// run). What the RBAC allows, asked of the real authorizer: rbac.int.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { chartCrdDrift } from '../../tools/sync-chart-crds.ts';
import { kubectl, useNamespace } from '../support/cluster.ts';
import {
  CHART,
  find,
  FULL_VALUES,
  helm,
  helmOk,
  parseManifests,
  ROOT,
  template,
  templateText,
  useHelm,
  valuesFile,
  type Manifest,
  type PolicyRule,
} from './support.ts';

const ns = useNamespace('chart');
useHelm();

interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  securityContext: Record<string, unknown>;
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: Record<string, unknown>;
  containers: Container[];
  volumes: { name: string; configMap?: { name: string }; secret?: { secretName: string; items: { key: string; path: string }[] }; emptyDir?: object }[];
}
interface Deployment extends Manifest {
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string>; annotations: Record<string, string> };
      spec: PodSpec & { topologySpreadConstraints?: { labelSelector: { matchLabels: Record<string, string> } }[] };
    };
  };
}
interface Service extends Manifest {
  spec: { type: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] };
}
type Component = 'controller' | 'accept';

/** The Deployment of a component of release "usher": usher (the controller) or usher-accept. */
const deploymentOf = (manifests: Manifest[], component: Component = 'controller'): Deployment =>
  find(manifests, 'Deployment', component === 'controller' ? 'usher' : 'usher-accept') as Deployment;
const containerOf = (manifests: Manifest[], component: Component = 'controller'): Container => {
  const container = deploymentOf(manifests, component).spec.template.spec.containers[0];
  if (!container) throw new Error('no container');
  return container;
};
/** A component's configuration file, the ConfigMap key its Deployment mounts as /etc/usher/config.yaml. */
const configText = (manifests: Manifest[], component: Component = 'controller'): string =>
  (find(manifests, 'ConfigMap') as Manifest & { data: Record<string, string> }).data[`${component}.yaml`] ?? '';
const rulesOf = (manifests: Manifest[], kind: 'ClusterRole' | 'Role', name: string): PolicyRule[] =>
  (find(manifests, kind, name) as Manifest & { rules: PolicyRule[] }).rules;
const SELECTOR = { 'app.kubernetes.io/name': 'usher', 'app.kubernetes.io/instance': 'usher' };
/** Whether a selector's labels are all among a pod's. */
const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('helm lint', () => {
  it('passes --strict with the default values and with everything switched on', async () => {
    const plain = await helm(['lint', '--strict', CHART]);
    expect(plain.stdout + plain.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(plain.code).toBe(0);
    const full = await helm([
      'lint',
      '--strict',
      CHART,
      '--set-json',
      `config=${JSON.stringify(FULL_VALUES.config)}`,
      '--set-json',
      `ingress=${JSON.stringify(FULL_VALUES.ingress)}`,
      '--set',
      'metrics.serviceMonitor.enabled=true',
    ]);
    expect(full.stdout + full.stderr).toContain('0 chart(s) failed');
    expect(full.code).toBe(0);
  });
});

describe('the CRDs', () => {
  it('are the repository’s crds/, copied into the chart by tools/sync-chart-crds.ts', () => {
    // When this fails: run `node tools/sync-chart-crds.ts`.
    expect(chartCrdDrift()).toEqual([]);
  });

  it('render equal to crds/, labelled, and annotated to survive helm uninstall', async () => {
    const rendered = (await template()).filter((m) => m.kind === 'CustomResourceDefinition');
    const sources = readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml'));
    expect(rendered.map((m) => m.metadata.name).sort()).toEqual(['userinvitations.usher.dev', 'users.usher.dev']);
    expect(sources).toHaveLength(rendered.length);
    for (const file of sources) {
      const source = load(readFileSync(join(ROOT, 'crds', file), 'utf8')) as Manifest;
      const crd = find(rendered, 'CustomResourceDefinition', source.metadata.name);
      expect(crd.metadata.annotations).toEqual({ 'helm.sh/resource-policy': 'keep' });
      expect(crd.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'Helm', 'app.kubernetes.io/name': 'usher' });
      // The chart adds labels and the annotation; everything else is the source, key for key.
      expect({ ...crd, metadata: { name: crd.metadata.name } }).toEqual(source);
    }
  });

  it('can be left out (crds.enabled=false) or left to helm uninstall (crds.keep=false)', async () => {
    expect((await template({ crds: { enabled: false } })).filter((m) => m.kind === 'CustomResourceDefinition')).toEqual([]);
    const unkept = (await template({ crds: { keep: false } })).filter((m) => m.kind === 'CustomResourceDefinition');
    expect(unkept).toHaveLength(2);
    for (const crd of unkept) expect(crd.metadata.annotations).toBeUndefined();
  });

  it('travel in the packaged chart, which renders the same as the folder', async () => {
    const out = mkdtempSync(join(tmpdir(), 'usher-chart-'));
    const packaged = await helmOk(['package', CHART, '--destination', out]);
    const tgz = join(out, 'usher-0.1.0.tgz');
    expect(packaged).toContain(tgz);
    expect(await templateText({}, { chart: tgz })).toBe(await templateText());
  });
});

describe('the default rendering', () => {
  it('makes exactly the expected objects', async () => {
    const kinds = (await template()).map((m) => `${m.kind}/${m.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/usher',
      'ClusterRole/usher-accept',
      'ClusterRole/usher-invitation-admin',
      'ClusterRole/usher-invitation-editor',
      'ClusterRole/usher-invitation-viewer',
      'ClusterRoleBinding/usher',
      'ClusterRoleBinding/usher-accept',
      'ConfigMap/usher',
      // The helm test hook (templates/tests/), made only by `helm test`.
      'ConfigMap/usher-test',
      'CustomResourceDefinition/userinvitations.usher.dev',
      'CustomResourceDefinition/users.usher.dev',
      'Deployment/usher',
      'Deployment/usher-accept',
      'Pod/usher-test',
      'PodDisruptionBudget/usher',
      'PodDisruptionBudget/usher-accept',
      'Role/usher',
      'Role/usher-accept',
      'Role/usher-leader-election',
      'Role/usher-test',
      'RoleBinding/usher',
      'RoleBinding/usher-accept',
      'RoleBinding/usher-leader-election',
      'RoleBinding/usher-test',
      'Service/usher',
      'Service/usher-metrics',
      'ServiceAccount/usher',
      'ServiceAccount/usher-accept',
      'ServiceAccount/usher-test',
      'ValidatingAdmissionPolicy/usher-who-may-invite-whom',
      'ValidatingAdmissionPolicyBinding/usher-who-may-invite-whom',
    ]);
  });

  it('runs the controller: two hardened replicas that elect a leader, as ServiceAccount usher, with no web page', async () => {
    const manifests = await template();
    const deployment = deploymentOf(manifests, 'controller');
    const pod = deployment.spec.template.spec;
    const container = containerOf(manifests, 'controller');
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('usher');
    expect(container.image).toBe('ghcr.io/usher-dev/usher:0.1.0');
    expect(container.args).toEqual(['--component', 'controller', '--config', '/etc/usher/config.yaml']);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
    expect(env).toEqual({
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      USHER_LEADER_ELECTION: 'true',
      USHER_LEASE_NAME: 'usher-leader',
      USHER_METRICS_PORT: '9090',
      LOG_LEVEL: 'info',
      NODE_OPTIONS: '--max-semi-space-size=1',
    });
    expect(container.ports).toEqual([{ name: 'metrics', containerPort: 9090, protocol: 'TCP' }]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    // A writable /tmp despite the read-only root file system; the config mounted read-only.
    expect(container.volumeMounts).toEqual([
      { name: 'config', mountPath: '/etc/usher', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(pod.volumes.find((v) => v.name === 'config')?.configMap).toEqual({ name: 'usher', items: [{ key: 'controller.yaml', path: 'config.yaml' }] });
    expect(deployment.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('runs the acceptance page: two hardened replicas of its own, as ServiceAccount usher-accept, without leader election', async () => {
    const manifests = await template();
    const deployment = deploymentOf(manifests, 'accept');
    const pod = deployment.spec.template.spec;
    const container = containerOf(manifests, 'accept');
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('usher-accept');
    expect(container.image).toBe('ghcr.io/usher-dev/usher:0.1.0');
    expect(container.args).toEqual(['--component', 'accept', '--config', '/etc/usher/config.yaml']);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
    // No USHER_LEADER_ELECTION, no USHER_LEASE_NAME: the page takes no part in leader election.
    expect(env).toEqual({
      POD_NAME: 'metadata.name',
      POD_NAMESPACE: 'metadata.namespace',
      USHER_METRICS_PORT: '9090',
      LOG_LEVEL: 'info',
      NODE_OPTIONS: '--max-semi-space-size=1',
    });
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ]);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(pod.securityContext).toEqual(deploymentOf(manifests, 'controller').spec.template.spec.securityContext);
    expect(container.securityContext).toEqual(containerOf(manifests, 'controller').securityContext);
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    expect(container.volumeMounts).toEqual([
      { name: 'config', mountPath: '/etc/usher', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(pod.volumes.find((v) => v.name === 'config')?.configMap).toEqual({ name: 'usher', items: [{ key: 'accept.yaml', path: 'config.yaml' }] });
  });

  it('rolls each Deployment when its own configuration file changes', async () => {
    const manifests = await template(FULL_VALUES);
    for (const component of ['controller', 'accept'] as const) {
      const checksum = deploymentOf(manifests, component).spec.template.metadata.annotations['checksum/config'];
      expect(checksum, component).toBe(createHash('sha256').update(configText(manifests, component).replace(/\n$/, '')).digest('hex'));
    }
  });

  it('keeps the two Deployments’ selectors apart: the page’s Service selects the accept pods only, the metrics Service both', async () => {
    const manifests = await template();
    const controller = deploymentOf(manifests, 'controller');
    const accept = deploymentOf(manifests, 'accept');
    expect(controller.spec.selector.matchLabels).toEqual({ ...SELECTOR, 'app.kubernetes.io/component': 'controller' });
    expect(accept.spec.selector.matchLabels).toEqual({ ...SELECTOR, 'app.kubernetes.io/component': 'accept' });
    const controllerPods = controller.spec.template.metadata.labels;
    const acceptPods = accept.spec.template.metadata.labels;
    expect(selects(controller.spec.selector.matchLabels, controllerPods)).toBe(true);
    expect(selects(controller.spec.selector.matchLabels, acceptPods)).toBe(false);
    expect(selects(accept.spec.selector.matchLabels, acceptPods)).toBe(true);
    expect(selects(accept.spec.selector.matchLabels, controllerPods)).toBe(false);

    const page = find(manifests, 'Service', 'usher') as Service;
    expect(page.spec.type).toBe('ClusterIP');
    expect(page.spec.selector).toEqual(accept.spec.selector.matchLabels);
    expect(page.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([['http', 80, 'http']]);
    const metrics = find(manifests, 'Service', 'usher-metrics') as Service;
    expect(metrics.metadata.labels).toMatchObject({ 'app.kubernetes.io/component': 'metrics' });
    expect(metrics.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([['metrics', 9090, 'metrics']]);
    expect(selects(metrics.spec.selector, controllerPods) && selects(metrics.spec.selector, acceptPods)).toBe(true);
  });

  it('spreads each Deployment’s pods over nodes by its own selector', async () => {
    const manifests = await template();
    for (const component of ['controller', 'accept'] as const) {
      const deployment = deploymentOf(manifests, component);
      expect(deployment.spec.template.spec.topologySpreadConstraints?.[0]?.labelSelector.matchLabels, component).toEqual(deployment.spec.selector.matchLabels);
    }
    const single = await template({ replicaCount: 1, leaderElection: { enabled: false }, accept: { replicaCount: 1 } });
    for (const component of ['controller', 'accept'] as const)
      expect(deploymentOf(single, component).spec.template.spec.topologySpreadConstraints, component).toBeUndefined();
  });

  it('passes nodeOptions to both components as NODE_OPTIONS, and none when it is empty', async () => {
    const nodeOptionsOf = (manifests: Manifest[], component: 'controller' | 'accept'): string | undefined =>
      containerOf(manifests, component).env.find((e) => e.name === 'NODE_OPTIONS')?.value;
    const tuned = await template({ nodeOptions: '--max-semi-space-size=4 --max-old-space-size=900' });
    const plain = await template({ nodeOptions: '' });
    for (const component of ['controller', 'accept'] as const) {
      expect(nodeOptionsOf(tuned, component), component).toBe('--max-semi-space-size=4 --max-old-space-size=900');
      expect(nodeOptionsOf(plain, component), component).toBeUndefined();
    }
  });

  it('keeps a pod of each Deployment through disruptions when it has several, and has no PDB for one', async () => {
    type Pdb = Manifest & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } };
    const manifests = await template();
    for (const component of ['controller', 'accept'] as const) {
      const pdb = find(manifests, 'PodDisruptionBudget', component === 'controller' ? 'usher' : 'usher-accept') as Pdb;
      expect(pdb.spec.minAvailable).toBe(1);
      expect(pdb.spec.selector.matchLabels).toEqual(deploymentOf(manifests, component).spec.selector.matchLabels);
    }
    const pdbs = async (values: Record<string, unknown>): Promise<string[]> =>
      (await template(values)).filter((m) => m.kind === 'PodDisruptionBudget').map((m) => m.metadata.name);
    expect(await pdbs({ replicaCount: 1 })).toEqual(['usher-accept']);
    expect(await pdbs({ accept: { replicaCount: 1 } })).toEqual(['usher']);
    expect(await pdbs({ replicaCount: 1, accept: { replicaCount: 1 } })).toEqual([]);
    expect(await pdbs({ podDisruptionBudget: { enabled: false } })).toEqual([]);
  });

  it('sizes and names each Deployment on its own', async () => {
    const manifests = await template({
      replicaCount: 3,
      resources: { requests: { cpu: '100m' } },
      serviceAccount: { name: 'usher-operator' },
      accept: {
        replicaCount: 5,
        resources: { requests: { cpu: '200m', memory: '64Mi' } },
        serviceAccount: { name: 'usher-page', annotations: { 'example.com/role': 'page' } },
      },
    });
    expect(deploymentOf(manifests, 'controller').spec.replicas).toBe(3);
    expect(deploymentOf(manifests, 'accept').spec.replicas).toBe(5);
    // Helm merges values into the defaults, key by key.
    expect(containerOf(manifests, 'controller').resources).toEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    expect(containerOf(manifests, 'accept').resources).toEqual({ requests: { cpu: '200m', memory: '64Mi' }, limits: { memory: '512Mi' } });
    expect(deploymentOf(manifests, 'controller').spec.template.spec.serviceAccountName).toBe('usher-operator');
    expect(deploymentOf(manifests, 'accept').spec.template.spec.serviceAccountName).toBe('usher-page');
    expect(find(manifests, 'ServiceAccount', 'usher-page').metadata.annotations).toEqual({ 'example.com/role': 'page' });
    expect(find(manifests, 'ServiceAccount', 'usher-operator').metadata.annotations).toBeUndefined();
  });

  it('writes a configuration file per component that Usher’s own loader accepts, with Usher’s defaults and Usher’s namespace', async () => {
    const manifests = await template();
    for (const component of ['controller', 'accept'] as const) {
      const config = parseConfig(configText(manifests, component), { source: `ConfigMap usher ${component}.yaml`, env: {} });
      expect(config.namespace, component).toBe('usher-system');
      expect(config.tenancy, component).toEqual({ namespaceLabel: 'usher.dev/tenant', instanceNamespaces: [] });
      expect(config.invitations, component).toMatchObject({ expireAfter: 'P7D', maxExpireAfter: 'P90D', linkDisclosure: 'Status', requireGroupOrRole: true });
      expect(config.accept, component).toMatchObject({ port: 8080, credentialsNamespace: 'usher-system', trustProxy: [] });
      expect(config.mail, component).toBeUndefined();
      expect(config.controller, component).toEqual({ workers: 4, resyncPeriodMs: 600_000 });
    }
    // Usher's namespace is the release's, wherever it is installed.
    const elsewhere = await template({}, { namespace: 'platform' });
    expect(parseConfig(configText(elsewhere, 'accept'), { env: {} })).toMatchObject({ namespace: 'platform', accept: { credentialsNamespace: 'platform' } });
  });
});

describe('RBAC', () => {
  const READ = ['get', 'list', 'watch'];
  /** The controller's ClusterRole with linkDisclosure=Status: no Secrets anywhere but in Usher's namespace (its Role). */
  const controllerClusterRules: PolicyRule[] = [
    { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: [...READ, 'update'] },
    { apiGroups: ['usher.dev'], resources: ['userinvitations/status'], verbs: ['update'] },
    { apiGroups: ['usher.dev'], resources: ['users'], verbs: [...READ, 'create', 'update', 'delete'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: READ },
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
  ];
  const linkSecretsRule: PolicyRule = { apiGroups: [''], resources: ['secrets'], verbs: [...READ, 'create', 'update'] };
  const acceptClusterRules: PolicyRule[] = [
    { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: READ },
    { apiGroups: [''], resources: ['namespaces'], verbs: READ },
    { apiGroups: ['usher.dev'], resources: ['users'], verbs: [...READ, 'create', 'update', 'delete'] },
  ];

  function noWildcard(rules: PolicyRule[]): void {
    for (const rule of rules) {
      for (const value of [
        ...(rule.apiGroups ?? []),
        ...(rule.resources ?? []),
        ...rule.verbs,
        ...(rule.resourceNames ?? []),
        ...(rule.nonResourceURLs ?? []),
      ]) {
        expect(value).not.toContain('*');
      }
    }
  }

  it('grants each identity exactly what it calls, with no wildcard anywhere', async () => {
    const manifests = await template();
    expect(rulesOf(manifests, 'ClusterRole', 'usher')).toEqual(controllerClusterRules);
    expect(rulesOf(manifests, 'Role', 'usher')).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: [...READ, 'create', 'update', 'delete'] }]);
    expect(rulesOf(manifests, 'Role', 'usher-leader-election')).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['usher-leader'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    expect(rulesOf(manifests, 'ClusterRole', 'usher-accept')).toEqual(acceptClusterRules);
    expect(rulesOf(manifests, 'Role', 'usher-accept')).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: [...READ, 'create', 'update'] }]);
    // Usher's own identities (the aggregated roles for people and the test hook's Role have tests of their own).
    const roles = manifests.filter((m) => (m.kind === 'Role' || m.kind === 'ClusterRole') && !/-invitation-|-test$/.test(m.metadata.name));
    for (const role of roles) {
      if (role.kind === 'Role') expect(role.metadata.namespace, role.metadata.name).toBe('usher-system');
      noWildcard((role as Manifest & { rules: PolicyRule[] }).rules);
    }
    expect(roles).toHaveLength(5);
  });

  it('gives the controller users/status only with identity.provider keycloak (the account in the User\u2019s status)', async () => {
    const usersStatus = { apiGroups: ['usher.dev'], resources: ['users/status'], verbs: ['update'] };
    expect(rulesOf(await template(), 'ClusterRole', 'usher')).not.toContainEqual(usersStatus);
    const identity = {
      config: {
        identity: { provider: 'keycloak', keycloak: { url: 'https://kc', realm: 'r', clientSecret: { existingSecret: 's' } } },
        accept: { oidc: { enabled: true, issuer: 'https://kc/realms/r', clientId: 'usher-accept', clientSecret: { existingSecret: 'o' } } },
      },
    };
    const manifests = await template(identity);
    const [invitations, invitationStatus, users, ...rest] = controllerClusterRules;
    expect(rulesOf(manifests, 'ClusterRole', 'usher')).toEqual([invitations, invitationStatus, users, usersStatus, ...rest]);
    expect(rulesOf(manifests, 'ClusterRole', 'usher-accept')).toEqual(acceptClusterRules);
  });

  it('gives the controller delete on Users only while it deletes those left without memberships (config.access)', async () => {
    const usersRule = (verbs: string[]): PolicyRule => ({ apiGroups: ['usher.dev'], resources: ['users'], verbs });
    for (const [access, verbs] of [
      [{}, [...READ, 'create', 'update', 'delete']],
      [{ deleteUserWithoutMemberships: false }, [...READ, 'create', 'update']],
      [{ onInvitationDelete: 'Keep' }, [...READ, 'create', 'update']],
    ] as const) {
      const rules = rulesOf(await template({ config: { access } }), 'ClusterRole', 'usher');
      expect(rules, JSON.stringify(access)).toContainEqual(usersRule([...verbs]));
    }
    expect(configText(await template({ config: { access: { onInvitationDelete: 'Keep' } } }), 'controller')).toContain('onInvitationDelete: Keep');
  });

  it('gives the controller Secrets in every namespace only with linkDisclosure=Secret, without delete, and the page never', async () => {
    const manifests = await template({ config: { security: { invitations: { linkDisclosure: 'Secret' } } } });
    expect(rulesOf(manifests, 'ClusterRole', 'usher')).toEqual([...controllerClusterRules, linkSecretsRule]);
    expect(rulesOf(manifests, 'ClusterRole', 'usher-accept')).toEqual(acceptClusterRules);
    expect(rulesOf(manifests, 'Role', 'usher-accept')).toEqual(rulesOf(await template(), 'Role', 'usher-accept'));
  });

  it('binds each role to its own ServiceAccount, and the Lease Role to a custom Lease name', async () => {
    const manifests = await template(
      { serviceAccount: { name: 'usher-operator' }, accept: { serviceAccount: { name: 'usher-page' } }, leaderElection: { leaseName: 'usher-lock' } },
      { namespace: 'platform' },
    );
    type Binding = Manifest & { roleRef: { kind: string; name: string }; subjects: { kind: string; name: string; namespace: string }[] };
    const bindings = manifests.filter((m): m is Binding => m.kind === 'ClusterRoleBinding' || m.kind === 'RoleBinding');
    expect(bindings.map((b) => [b.kind, b.metadata.name, b.metadata.namespace, b.roleRef.kind, b.roleRef.name, b.subjects]).sort()).toEqual(
      [
        ['ClusterRoleBinding', 'usher', undefined, 'ClusterRole', 'usher', [{ kind: 'ServiceAccount', name: 'usher-operator', namespace: 'platform' }]],
        [
          'ClusterRoleBinding',
          'usher-accept',
          undefined,
          'ClusterRole',
          'usher-accept',
          [{ kind: 'ServiceAccount', name: 'usher-page', namespace: 'platform' }],
        ],
        ['RoleBinding', 'usher', 'platform', 'Role', 'usher', [{ kind: 'ServiceAccount', name: 'usher-operator', namespace: 'platform' }]],
        ['RoleBinding', 'usher-accept', 'platform', 'Role', 'usher-accept', [{ kind: 'ServiceAccount', name: 'usher-page', namespace: 'platform' }]],
        [
          'RoleBinding',
          'usher-leader-election',
          'platform',
          'Role',
          'usher-leader-election',
          [{ kind: 'ServiceAccount', name: 'usher-operator', namespace: 'platform' }],
        ],
        ['RoleBinding', 'usher-test', 'platform', 'Role', 'usher-test', [{ kind: 'ServiceAccount', name: 'usher-test', namespace: 'platform' }]],
      ].sort(),
    );
    expect(find(manifests, 'ServiceAccount', 'usher-operator').metadata.namespace).toBe('platform');
    expect(find(manifests, 'ServiceAccount', 'usher-page').metadata.namespace).toBe('platform');
    expect(rulesOf(manifests, 'Role', 'usher-leader-election')[0]?.resourceNames).toEqual(['usher-lock']);
    const env = containerOf(manifests, 'controller').env.find((e) => e.name === 'USHER_LEASE_NAME');
    expect(env?.value).toBe('usher-lock');
  });

  it('lets the page keep password hashes in another credentials namespace, with a Role there', async () => {
    const manifests = await template({ config: { accept: { credentialsNamespace: 'usher-credentials' } } });
    const role = find(manifests, 'Role', 'usher-accept-credentials') as Manifest & { rules: PolicyRule[] };
    expect(role.metadata.namespace).toBe('usher-credentials');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create', 'update'] }]);
    const binding = find(manifests, 'RoleBinding', 'usher-accept-credentials') as Manifest & { subjects: unknown[] };
    expect(binding.metadata.namespace).toBe('usher-credentials');
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'usher-accept', namespace: 'usher-system' }]);
    expect(parseConfig(configText(manifests, 'accept'), { env: {} }).accept.credentialsNamespace).toBe('usher-credentials');
    // Records stay in Usher's namespace, and so does the page's Role for them.
    expect(find(manifests, 'Role', 'usher-accept').metadata.namespace).toBe('usher-system');
    expect((await template()).filter((m) => m.metadata.name === 'usher-accept-credentials')).toEqual([]);
  });

  it('renders for the test harness as its global setup does: the operator and accept identities, with link Secrets', async () => {
    const sets = ['serviceAccount.name=usher', 'accept.serviceAccount.name=usher-accept', 'config.security.invitations.linkDisclosure=Secret'].flatMap((v) => [
      '--set',
      v,
    ]);
    const manifests = parseManifests(await helmOk(['template', 'usher-harness', CHART, '-n', 'usher-system', ...sets, '--show-only', 'templates/rbac.yaml']));
    const subjects = (kind: string, name: string): unknown => (find(manifests, kind, name) as Manifest & { subjects: unknown }).subjects;
    expect(subjects('ClusterRoleBinding', 'usher-harness')).toEqual([{ kind: 'ServiceAccount', name: 'usher', namespace: 'usher-system' }]);
    expect(subjects('ClusterRoleBinding', 'usher-harness-accept')).toEqual([{ kind: 'ServiceAccount', name: 'usher-accept', namespace: 'usher-system' }]);
    expect(rulesOf(manifests, 'ClusterRole', 'usher-harness')).toContainEqual(linkSecretsRule);
    expect(rulesOf(manifests, 'Role', 'usher-harness-leader-election')[0]?.resourceNames).toEqual(['usher-harness-leader']);
  });
});

describe('config.rbac (memberships projected into RBAC)', () => {
  const READ = ['get', 'list', 'watch'];
  const RBAC_GROUP = 'rbac.authorization.k8s.io';
  const bindingsRule: PolicyRule = {
    apiGroups: [RBAC_GROUP],
    resources: ['rolebindings', 'clusterrolebindings'],
    verbs: ['list', 'watch', 'create', 'update', 'delete'],
  };
  const bindRule = (names: string[]): PolicyRule => ({ apiGroups: [RBAC_GROUP], resources: ['clusterroles'], verbs: ['bind'], resourceNames: names });
  const on = (rbac: Record<string, unknown>, config: Record<string, unknown> = {}): Record<string, unknown> => ({
    config: { ...config, rbac: { enabled: true, ...rbac } },
  });
  /** Every rule of Usher's own roles (not the aggregated ones for people, not the test hook's) that is about RBAC objects. */
  const rbacRules = (manifests: Manifest[]): PolicyRule[] =>
    manifests
      .filter((m) => (m.kind === 'Role' || m.kind === 'ClusterRole') && !/-invitation-|-test$/.test(m.metadata.name))
      .flatMap((m) => (m as Manifest & { rules: PolicyRule[] }).rules)
      .filter((rule) => rule.apiGroups?.includes(RBAC_GROUP));
  const keycloak = {
    identity: { provider: 'keycloak', keycloak: { url: 'https://kc', realm: 'r', clientSecret: { existingSecret: 's' } } },
    accept: { oidc: { enabled: true, issuer: 'https://kc/realms/r', clientId: 'usher-accept', clientSecret: { existingSecret: 'o' } } },
  };

  it('is off by default: no RBAC objects, no bind, and no usher.rbac in either configuration file', async () => {
    const manifests = await template();
    expect(rbacRules(manifests)).toEqual([]);
    for (const component of ['controller', 'accept'] as const) {
      expect(configText(manifests, component), component).not.toContain('rbac');
      expect(parseConfig(configText(manifests, component), { env: {} }).rbac, component).toBeUndefined();
    }
    // Maps filled in but not enabled: still nothing.
    const off = await template({ config: { rbac: { roleMap: { developer: 'edit' }, groupMap: { developers: 'view' } } } });
    expect(rbacRules(off)).toEqual([]);
    expect(configText(off)).not.toContain('rbac');
  });

  it('gives the controller the bindings and bind on exactly the mapped ClusterRoles, sorted, each once; the page nothing', async () => {
    const manifests = await template(
      on({ roleMap: { developer: 'edit', viewer: 'view', 'platform.admin': 'edit' }, groupMap: { developers: 'view', auditors: 'custom-reader' } }),
    );
    const controller = rulesOf(manifests, 'ClusterRole', 'usher');
    // The User's Bound condition is in its status: users/status, as with config.identity.
    const userStatus = { apiGroups: ['usher.dev'], resources: ['users/status'], verbs: ['update'] };
    expect(controller).toContainEqual(userStatus);
    const others = controller.filter((rule) => JSON.stringify(rule) !== JSON.stringify(userStatus));
    expect(others.slice(0, -2)).toEqual(rulesOf(await template(), 'ClusterRole', 'usher'));
    expect(controller.slice(-2)).toEqual([bindingsRule, bindRule(['custom-reader', 'edit', 'view'])]);
    expect(rulesOf(manifests, 'ClusterRole', 'usher-accept')).toEqual(rulesOf(await template(), 'ClusterRole', 'usher-accept'));
    // Namespaces were read already; nothing else about RBAC objects, and nothing in any Role.
    expect(controller.filter((rule) => rule.resources?.includes('namespaces'))).toEqual([{ apiGroups: [''], resources: ['namespaces'], verbs: READ }]);
    expect(rbacRules(manifests)).toEqual([bindingsRule, bindRule(['custom-reader', 'edit', 'view'])]);
    for (const rule of rbacRules(manifests)) {
      expect(rule.verbs).not.toContain('escalate');
      expect(rule.verbs).not.toContain('*');
      if (rule.verbs.includes('bind')) expect(rule.resourceNames?.length).toBeGreaterThan(0);
    }
  });

  it('binds groups only, or roles only, and keeps the link-Secret rule with linkDisclosure=Secret', async () => {
    expect(rulesOf(await template(on({ groupMap: { developers: 'view' } })), 'ClusterRole', 'usher').at(-1)).toEqual(bindRule(['view']));
    expect(rulesOf(await template(on({ roleMap: { developer: 'edit' } })), 'ClusterRole', 'usher').at(-1)).toEqual(bindRule(['edit']));
    const secret = await template(on({ roleMap: { developer: 'edit' } }, { security: { invitations: { linkDisclosure: 'Secret' } } }));
    const rules = rulesOf(secret, 'ClusterRole', 'usher');
    expect(rules.slice(-3)).toEqual([{ apiGroups: [''], resources: ['secrets'], verbs: [...READ, 'create', 'update'] }, bindingsRule, bindRule(['edit'])]);
  });

  it('writes usher.rbac into both configuration files, only the keys set, and Usher’s loader reads it with its defaults', async () => {
    const manifests = await template(on({ roleMap: { developer: 'edit' }, groupMap: { developers: 'view' } }));
    for (const component of ['controller', 'accept'] as const) {
      const text = configText(manifests, component);
      expect((load(text) as { usher: { rbac: unknown } }).usher.rbac, component).toEqual({
        enabled: true,
        roleMap: { developer: 'edit' },
        groupMap: { developers: 'view' },
      });
      expect(parseConfig(text, { env: {} }).rbac, component).toEqual({
        roleMap: { developer: 'edit' },
        groupMap: { developers: 'view' },
        username: { from: 'Email', prefix: '' },
        groups: { prefix: '' },
      });
    }
    const prefixed = await template(on({ roleMap: { developer: 'edit' }, username: { from: 'Email', prefix: 'oidc:' }, groups: { prefix: 'oidc:' } }));
    expect((load(configText(prefixed)) as { usher: { rbac: unknown } }).usher.rbac).toEqual({
      enabled: true,
      roleMap: { developer: 'edit' },
      username: { from: 'Email', prefix: 'oidc:' },
      groups: { prefix: 'oidc:' },
    });
    // With Keycloak, the username is the account's there unless from says otherwise.
    const withKeycloak = await template(on({ roleMap: { developer: 'edit' } }, keycloak));
    const text = configText(withKeycloak, 'controller');
    expect(text).not.toContain('from:');
    const readFile = (): string => 'secret-from-file';
    expect(parseConfig(text, { env: {}, readFile, component: 'controller' }).rbac?.username).toEqual({ from: 'IdentityUsername', prefix: '' });
    const explicit = await template(on({ roleMap: { developer: 'edit' }, username: { from: 'IdentityUsername' } }, keycloak));
    expect(parseConfig(configText(explicit, 'controller'), { env: {}, readFile, component: 'controller' }).rbac?.username.from).toBe('IdentityUsername');
  });
});

describe('the client address behind the Ingress (config.accept.trustProxy)', () => {
  const ingress = { enabled: true, host: 'join.example.com' };
  const trustProxyOf = async (values: Record<string, unknown>): Promise<unknown> => {
    const manifests = await template(values);
    const controller = parseConfig(configText(manifests, 'controller'), { env: {} }).accept.trustProxy;
    const accept = parseConfig(configText(manifests, 'accept'), { env: {} }).accept.trustProxy;
    expect(controller).toEqual(accept);
    return accept;
  };

  it('believes the one hop the ingress controller appends when the Ingress is on and trustProxy is not set', async () => {
    expect(await trustProxyOf({ ingress })).toBe(1);
    expect(configText(await template({ ingress }), 'accept')).toMatch(/^ {4}trustProxy: 1$/m);
  });

  it('keeps what is set, a list of proxies or a number of hops, and believes no proxy without an Ingress', async () => {
    expect(await trustProxyOf({ ingress, config: { accept: { trustProxy: ['10.0.0.0/8', '192.168.1.1'] } } })).toEqual(['10.0.0.0/8', '192.168.1.1']);
    expect(await trustProxyOf({ ingress, config: { accept: { trustProxy: 2 } } })).toBe(2);
    expect(await trustProxyOf({ config: { accept: { trustProxy: 3 } } })).toBe(3);
    expect(await trustProxyOf({})).toEqual([]);
  });

  it('says in the install notes what is believed and that the Ingress must be the one way in', async () => {
    // helm template leaves NOTES.txt out; a client-side dry run prints it (it creates nothing, but refuses
    // to take over objects of another owner: hence a release name of its own and no CRDs).
    const notes = async (values: Record<string, unknown>): Promise<string> =>
      helmOk(['install', 'usher-notes', CHART, '--dry-run=client', '--namespace', 'usher-system', '-f', valuesFile({ ...values, crds: { enabled: false } })], {
        cluster: true,
      });
    const behindIngress = await notes({ ingress });
    expect(behindIngress).toContain('The acceptance page believes the last X-Forwarded-For hop (config.accept.trustProxy: 1)');
    expect(behindIngress).toContain('holds only while the ingress controller is the one way to Service usher-notes.');
    expect(behindIngress).toContain("keep others out with\nnetworkPolicy.enabled, or set config.accept.trustProxy to the ingress controller's pod CIDRs.");
    expect(await notes({ ingress, networkPolicy: { enabled: true, ingressFrom: [{ podSelector: {} }] } })).toContain(
      'The NetworkPolicy usher-notes-accept admits only networkPolicy.ingressFrom',
    );
    expect(await notes({ ingress, config: { accept: { trustProxy: ['10.0.0.0/8'] } } })).not.toContain('believes the last X-Forwarded-For hop');
    expect(await notes({})).not.toContain('believes the last X-Forwarded-For hop');
  });
});

describe('the NetworkPolicy (networkPolicy.enabled)', () => {
  const ingressFrom = [
    {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
      podSelector: { matchLabels: { 'app.kubernetes.io/name': 'ingress-nginx' } },
    },
  ];

  it('admits the page’s http port only from the ingress controller, and the metrics port from anywhere or from metricsFrom', async () => {
    const manifests = await template({ networkPolicy: { enabled: true, ingressFrom } });
    const policy = find(manifests, 'NetworkPolicy', 'usher-accept') as Manifest & { spec: Record<string, unknown> };
    expect(policy.spec).toEqual({
      podSelector: { matchLabels: deploymentOf(manifests, 'accept').spec.selector.matchLabels },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ port: 'http', protocol: 'TCP' }], from: ingressFrom }, { ports: [{ port: 'metrics', protocol: 'TCP' }] }],
    });
    const metricsFrom = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
    const scraped = find(await template({ networkPolicy: { enabled: true, ingressFrom, metricsFrom } }), 'NetworkPolicy') as Manifest & {
      spec: { ingress: unknown[] };
    };
    expect(scraped.spec.ingress[1]).toEqual({ ports: [{ port: 'metrics', protocol: 'TCP' }], from: metricsFrom });
  });

  it('is off by default', async () => {
    expect((await template()).filter((m) => m.kind === 'NetworkPolicy')).toEqual([]);
  });
});

describe('everything switched on (mail, SSO, CSRF key, Ingress, ServiceMonitor, NetworkPolicy)', () => {
  /** Reads a component's configuration file as its pod would: every file it names must come from a Secret volume of that pod. */
  function readBack(manifests: Manifest[], component: Component): { config: ReturnType<typeof parseConfig>; files: Record<string, string>; text: string } {
    const text = configText(manifests, component);
    const pod = deploymentOf(manifests, component).spec.template.spec;
    const container = containerOf(manifests, component);
    const files: Record<string, string> = {};
    const readFile = (path: string): string => {
      // The file must come from a Secret volume mounted at its folder, with the key as its name.
      const mount = container.volumeMounts.find((m) => m.mountPath === dirname(path));
      const volume = pod.volumes.find((v) => v.name === mount?.name);
      expect(mount?.readOnly, path).toBe(true);
      expect(volume?.secret?.items, path).toEqual([{ key: basename(path), path: basename(path) }]);
      files[path] = volume?.secret?.secretName ?? '';
      return path.endsWith('csrf-key') ? 'k'.repeat(48) : 'secret-from-file\n';
    };
    const config = parseConfig(text, { source: `ConfigMap usher ${component}.yaml`, env: {}, readFile, component });
    return { config, files, text };
  }

  it('mounts in each component only the Secrets it uses, as the files its configuration names, and nothing secret is in the ConfigMap', async () => {
    const manifests = await template(FULL_VALUES);
    const controller = readBack(manifests, 'controller');
    expect(controller.files).toEqual({ '/var/run/secrets/usher/mail/smtp-password': 'usher-smtp' });
    expect(controller.config.mail).toMatchObject({
      host: 'smtp.example.com',
      port: 465,
      tls: 'implicit',
      from: 'Platform <no-reply@example.com>',
      replyTo: 'help@example.com',
      auth: { user: 'no-reply@example.com', password: 'secret-from-file' },
    });
    expect(controller.config.accept.oidc).toBeUndefined();
    expect(controller.config.accept.csrfKey).toBeUndefined();

    const accept = readBack(manifests, 'accept');
    expect(accept.files).toEqual({
      '/var/run/secrets/usher/oidc/client-secret': 'usher-oidc',
      '/var/run/secrets/usher/csrf/csrf-key': 'usher-csrf',
    });
    // The page judges links by the controller's rules, which depend on whether mail is configured: it knows the server, not the password.
    expect(accept.config.mail).toMatchObject({ host: 'smtp.example.com', port: 465, from: 'Platform <no-reply@example.com>' });
    expect(accept.config.mail?.auth).toBeUndefined();
    expect(accept.config.accept.oidc).toEqual({ issuer: 'https://login.example.com', clientId: 'usher', clientSecret: 'secret-from-file' });
    expect(accept.config.accept).toMatchObject({ loginUrl: 'https://console.example.com', trustProxy: ['10.0.0.0/8'], csrfKey: 'k'.repeat(48) });

    for (const { config, text } of [controller, accept]) {
      expect(config.baseUrl).toBe('https://join.example.com');
      expect(config.tenancy.instanceNamespaces).toEqual(['platform-admins']);
      expect(text).not.toContain('secret-from-file');
    }
  });

  it('with Keycloak: the client secret is mounted into the controller only, and the page knows the provider but not the secret', async () => {
    const identity = {
      provider: 'keycloak',
      keycloak: { url: 'https://login.example.com', realm: 'platform', clientSecret: { existingSecret: 'usher-keycloak' } },
    };
    const manifests = await template({ ...FULL_VALUES, config: { ...FULL_VALUES.config, identity } });
    const controller = readBack(manifests, 'controller');
    expect(controller.files).toMatchObject({ '/var/run/secrets/usher/keycloak/client-secret': 'usher-keycloak' });
    expect(controller.config.identity).toEqual({
      provider: 'keycloak',
      onUserDelete: 'Disable',
      keycloak: { url: 'https://login.example.com', realm: 'platform', clientId: 'usher', clientSecret: 'secret-from-file' },
    });
    const accept = readBack(manifests, 'accept');
    expect(Object.keys(accept.files)).not.toContain('/var/run/secrets/usher/keycloak/client-secret');
    expect(accept.config.identity?.keycloak).toMatchObject({ url: 'https://login.example.com', realm: 'platform', clientSecret: '' });
    expect(accept.text).not.toContain('/var/run/secrets/usher/keycloak');
  });

  it('with Keycloak and a CA ConfigMap: the controller mounts it and names the file', async () => {
    const identity = {
      provider: 'keycloak',
      keycloak: { url: 'https://login.example.com', realm: 'platform', clientSecret: { existingSecret: 'usher-keycloak' }, caConfigMap: 'keycloak-ca' },
    };
    const manifests = await template({ ...FULL_VALUES, config: { ...FULL_VALUES.config, identity } });
    expect(configText(manifests, 'controller')).toContain('caFile: /etc/usher/keycloak-ca/ca.crt');
    const pod = deploymentOf(manifests, 'controller').spec.template.spec;
    expect(pod.volumes.find((v) => v.name === 'keycloak-ca')).toEqual({
      name: 'keycloak-ca',
      configMap: { name: 'keycloak-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    expect(containerOf(manifests, 'controller').volumeMounts).toContainEqual({ name: 'keycloak-ca', mountPath: '/etc/usher/keycloak-ca', readOnly: true });
    expect(deploymentOf(manifests, 'accept').spec.template.spec.volumes.map((v) => v.name)).not.toContain('keycloak-ca');
  });

  it('publishes the acceptance page (only) through the Ingress, with TLS, and derives baseUrl from its host', async () => {
    const values = { ...FULL_VALUES, config: { ...FULL_VALUES.config, baseUrl: '' } };
    const manifests = await template(values);
    const ingress = find(manifests, 'Ingress') as Manifest & { spec: Record<string, unknown> };
    expect(ingress.metadata.annotations).toEqual({ 'cert-manager.io/cluster-issuer': 'letsencrypt' });
    expect(ingress.spec).toEqual({
      ingressClassName: 'nginx',
      tls: [{ hosts: ['join.example.com'], secretName: 'join-example-com-tls' }],
      rules: [
        { host: 'join.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'usher', port: { name: 'http' } } } }] } },
      ],
    });
    // The Service behind it is the page's.
    expect((find(manifests, 'Service', 'usher') as Service).spec.selector).toEqual(deploymentOf(manifests, 'accept').spec.selector.matchLabels);
    expect(parseConfig(configText(manifests, 'accept'), { env: {}, readFile: () => 'k'.repeat(48) }).baseUrl).toBe('https://join.example.com');
    expect(parseConfig(configText(manifests, 'controller'), { env: {}, readFile: () => 'k'.repeat(48) }).baseUrl).toBe('https://join.example.com');
  });

  it('adds a ServiceMonitor scraping the metrics port of both components, each target labelled with its component', async () => {
    const manifests = await template(FULL_VALUES);
    const monitor = find(manifests, 'ServiceMonitor') as Manifest & { spec: { selector: { matchLabels: Record<string, string> } } };
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels).toMatchObject({ release: 'prometheus' });
    expect(monitor.spec).toEqual({
      selector: { matchLabels: { ...SELECTOR, 'app.kubernetes.io/component': 'metrics' } },
      namespaceSelector: { matchNames: ['usher-system'] },
      podTargetLabels: ['app.kubernetes.io/component'],
      endpoints: [{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
    });
    // It selects the metrics Service alone, and that one reaches both Deployments' pods.
    const services = manifests.filter((m): m is Service => m.kind === 'Service');
    expect(services.filter((svc) => selects(monitor.spec.selector.matchLabels, svc.metadata.labels ?? {})).map((svc) => svc.metadata.name)).toEqual([
      'usher-metrics',
    ]);
  });

  it('is accepted by the API server (server-side dry run; the ServiceMonitor CRD is not installed, so it is left out)', async () => {
    for (const values of [{}, FULL_VALUES]) {
      const manifests = (await template(values, { namespace: ns() })).filter((m) => m.kind !== 'ServiceMonitor');
      const result = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests }) });
      // The CRDs already exist (the test setup applied crds/ server-side): kubectl only warns about its own annotation.
      expect(result.stderr.split('\n').filter((line) => line !== '' && !line.includes('kubectl.kubernetes.io/last-applied-configuration'))).toEqual([]);
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('customresourcedefinition.apiextensions.k8s.io/userinvitations.usher.dev configured (server dry run)');
      expect(result.stdout).toContain('deployment.apps/usher created (server dry run)');
      expect(result.stdout).toContain('deployment.apps/usher-accept created (server dry run)');
      expect(result.stdout).toContain('validatingadmissionpolicy.admissionregistration.k8s.io/usher-who-may-invite-whom created (server dry run)');
      if (values === FULL_VALUES) {
        expect(result.stdout).toContain('ingress.networking.k8s.io/usher created (server dry run)');
        expect(result.stdout).toContain('networkpolicy.networking.k8s.io/usher-accept created (server dry run)');
      }
    }
  });
});

describe('the admission policy', () => {
  it('carries the configured tenant label and Instance namespaces into its CEL, and can be switched off', async () => {
    const manifests = await template({
      config: { tenancy: { namespaceLabel: 'platform.example.com/tenant', instanceNamespaces: ['ops', 'platform-admins'] } },
      admissionPolicy: { validationActions: ['Warn', 'Audit'] },
    });
    const policy = find(manifests, 'ValidatingAdmissionPolicy') as Manifest & {
      spec: { variables: { name: string; expression: string }[]; validations: { expression: string; messageExpression: string }[] };
    };
    const variables = Object.fromEntries(policy.spec.variables.map((v) => [v.name, v.expression]));
    expect(variables.namespaceTenant).toBe(
      `has(namespaceObject.metadata.labels) && "platform.example.com/tenant" in namespaceObject.metadata.labels ? namespaceObject.metadata.labels["platform.example.com/tenant"] : ''`,
    );
    expect(policy.spec.validations[0]?.expression).toBe(`variables.scope != 'Instance' || variables.namespaceName in ["ops","platform-admins"]`);
    expect(policy.spec.validations[1]?.messageExpression).toContain('has no platform.example.com/tenant label');
    const binding = find(manifests, 'ValidatingAdmissionPolicyBinding') as Manifest & { spec: Record<string, unknown> };
    expect(binding.spec).toEqual({ policyName: 'usher-who-may-invite-whom', validationActions: ['Warn', 'Audit'] });

    const off = await template({ admissionPolicy: { enabled: false } });
    expect(off.filter((m) => m.kind.startsWith('ValidatingAdmissionPolicy'))).toEqual([]);
  });
});

describe('wrong values', () => {
  async function failure(values: Record<string, unknown>): Promise<string> {
    const result = await helm(['template', 'usher', CHART, '-f', valuesFile(values)]);
    expect(result.code).not.toBe(0);
    return result.stderr;
  }

  it('refuses a value of the wrong type, naming the key', async () => {
    const message = await failure({ replicaCount: 'two' });
    expect(message).toContain("values don't meet the specifications of the schema(s)");
    expect(message).toContain("at '/replicaCount': got string, want integer");
  });

  it('refuses an unknown key (a typo) at the top and deep down, naming it', async () => {
    expect(await failure({ replicaCont: 3 })).toContain("at '': additional properties 'replicaCont' not allowed");
    expect(await failure({ config: { mail: { prot: 25 } } })).toContain("at '/config/mail': additional properties 'prot' not allowed");
    expect(await failure({ config: { security: { invitations: { expireAfter: '7 days' } } } })).toContain("at '/config/security/invitations/expireAfter'");
    expect(await failure({ admissionPolicy: { validationActions: ['Reject'] } })).toContain("at '/admissionPolicy/validationActions/0'");
  });

  it('refuses a trustProxy that is neither a list of proxies nor a number of hops from 1 to 10', async () => {
    for (const trustProxy of [0, 11, 1.5, 'all', true]) {
      expect(await failure({ config: { accept: { trustProxy } } }), String(trustProxy)).toContain("at '/config/accept/trustProxy'");
    }
  });

  it('refuses unknown keys under accept and networkPolicy', async () => {
    expect(await failure({ accept: { replicas: 2 } })).toContain("at '/accept': additional properties 'replicas' not allowed");
    expect(await failure({ accept: { serviceAccount: { nmae: 'x' } } })).toContain("at '/accept/serviceAccount': additional properties 'nmae' not allowed");
    expect(await failure({ networkPolicy: { enable: true } })).toContain("at '/networkPolicy': additional properties 'enable' not allowed");
  });

  it('refuses settings that belong together but are missing, saying which key to set', async () => {
    expect(await failure({ config: { mail: { enabled: true, from: 'a@example.com' } } })).toContain('config.mail.enabled is true: set config.mail.host');
    expect(await failure({ config: { mail: { enabled: true, host: 'smtp', from: 'a@example.com', auth: { user: 'u' } } } })).toContain(
      'set config.mail.auth.existingSecret',
    );
    expect(await failure({ config: { accept: { oidc: { enabled: true, issuer: 'https://login.example.com', clientId: 'usher' } } } })).toContain(
      'set config.accept.oidc.clientSecret.existingSecret',
    );
    expect(await failure({ config: { identity: { provider: 'keycloak', keycloak: { url: 'https://kc', realm: 'r' } } } })).toContain(
      'set config.identity.keycloak.clientSecret.existingSecret',
    );
    expect(
      await failure({ config: { identity: { provider: 'keycloak', keycloak: { url: 'https://kc', realm: 'r', clientSecret: { existingSecret: 's' } } } } }),
    ).toContain('config.identity.provider is keycloak: enable config.accept.oidc');
    expect(await failure({ ingress: { enabled: true } })).toContain('ingress.enabled is true: set ingress.host');
    expect(await failure({ leaderElection: { enabled: false } })).toContain('replicaCount > 1 needs leaderElection.enabled');
    expect(await failure({ networkPolicy: { enabled: true } })).toContain('networkPolicy.enabled is true: set networkPolicy.ingressFrom');
    expect(await failure({ serviceAccount: { name: 'usher' }, accept: { serviceAccount: { name: 'usher' } } })).toContain(
      'the acceptance page needs a ServiceAccount of its own',
    );
  });

  it('refuses config.rbac that binds nothing, or takes usernames from an identity provider there is none of', async () => {
    const nothing =
      'config.rbac.enabled is true but binds nothing: map a role or a group (config.rbac.roleMap, config.rbac.groupMap), or leave config.rbac.enabled false';
    expect(await failure({ config: { rbac: { enabled: true } } })).toContain(nothing);
    expect(await failure({ config: { rbac: { enabled: true, roleMap: {}, groupMap: {} } } })).toContain(nothing);
    expect(await failure({ config: { rbac: { enabled: true, roleMap: { developer: 'edit' }, username: { from: 'IdentityUsername' } } } })).toContain(
      'config.rbac.username.from is IdentityUsername: that needs config.identity.provider keycloak',
    );
  });

  it('refuses config.rbac names that Usher would refuse: role and group names as the CRD has them, ClusterRole names, the username source', async () => {
    const enabled = (rbac: Record<string, unknown>): Record<string, unknown> => ({ config: { rbac: { enabled: true, ...rbac } } });
    expect(await failure(enabled({ roleMap: { 'lead dev': 'edit' } }))).toContain("at '/config/rbac/roleMap': additional properties 'lead dev' not allowed");
    expect(await failure(enabled({ roleMap: { [`r${'o'.repeat(128)}`]: 'edit' } }))).toContain("at '/config/rbac/roleMap': additional properties 'roo");
    expect(await failure(enabled({ groupMap: { '/tenants/acme/developers': 'view' } }))).toContain(
      "at '/config/rbac/groupMap': additional properties '/tenants/acme/developers' not allowed",
    );
    for (const name of ['rbac/edit', '100%', '.', '..', '']) {
      expect(await failure(enabled({ roleMap: { developer: name } })), name).toContain("at '/config/rbac/roleMap/developer'");
    }
    expect(await failure(enabled({ roleMap: { developer: 'edit' }, username: { from: 'email' } }))).toContain("at '/config/rbac/username/from'");
    expect(await failure({ config: { rbac: { enable: true } } })).toContain("at '/config/rbac': additional properties 'enable' not allowed");
    // The same names are good ones for Usher's loader and for the chart.
    const longest = `r${'o'.repeat(126)}t`;
    const manifests = await template(enabled({ roleMap: { 'platform.admin_2': 'system:aggregate-to-edit', a: '...', [longest]: 'view' } }));
    expect(rulesOf(manifests, 'ClusterRole', 'usher').at(-1)?.resourceNames).toEqual(['...', 'system:aggregate-to-edit', 'view']);
    expect(parseConfig(configText(manifests), { env: {} }).rbac?.roleMap).toEqual({
      'platform.admin_2': 'system:aggregate-to-edit',
      a: '...',
      [longest]: 'view',
    });
  });
});
