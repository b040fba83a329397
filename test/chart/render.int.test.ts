// The Helm chart as rendered: lint, the objects and their settings, the
// configuration file read back by Usher's own loader, least-privilege RBAC,
// the CRDs equal to crds/, values typos refused, and the manifests accepted
// by the real API server (server-side dry run).
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { load } from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { chartCrdDrift } from '../../tools/sync-chart-crds.ts';
import { kubectl, useNamespace } from '../support/cluster.ts';
import { CHART, find, FULL_VALUES, helm, helmOk, ROOT, template, templateText, useHelm, valuesFile, type Manifest, type PolicyRule } from './support.ts';

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
  spec: { replicas: number; template: { metadata: { annotations: Record<string, string> }; spec: PodSpec } };
}

const deploymentOf = (manifests: Manifest[]): Deployment => find(manifests, 'Deployment') as Deployment;
const containerOf = (manifests: Manifest[]): Container => {
  const container = deploymentOf(manifests).spec.template.spec.containers[0];
  if (!container) throw new Error('no container');
  return container;
};
const configText = (manifests: Manifest[]): string => (find(manifests, 'ConfigMap') as Manifest & { data: Record<string, string> }).data['config.yaml'] ?? '';

describe('helm lint', () => {
  it('passes --strict with the default values and with everything switched on', async () => {
    const plain = await helm(['lint', '--strict', CHART]);
    expect(plain.stdout + plain.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(plain.code).toBe(0);
    const full = await helm(['lint', '--strict', CHART, '--set-json', `config=${JSON.stringify(FULL_VALUES.config)}`, '--set-json', `ingress=${JSON.stringify(FULL_VALUES.ingress)}`, '--set', 'metrics.serviceMonitor.enabled=true']);
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
      'ClusterRoleBinding/usher',
      'ConfigMap/usher',
      'CustomResourceDefinition/userinvitations.usher.dev',
      'CustomResourceDefinition/users.usher.dev',
      'Deployment/usher',
      'PodDisruptionBudget/usher',
      'Role/usher-leader-election',
      'RoleBinding/usher-leader-election',
      'Service/usher',
      'ServiceAccount/usher',
      'ValidatingAdmissionPolicy/usher-who-may-invite-whom',
      'ValidatingAdmissionPolicyBinding/usher-who-may-invite-whom',
    ]);
  });

  it('runs two hardened replicas that know their pod name and namespace, with probes on the metrics port', async () => {
    const manifests = await template();
    const deployment = deploymentOf(manifests);
    const pod = deployment.spec.template.spec;
    const container = containerOf(manifests);
    expect(deployment.spec.replicas).toBe(2);
    expect(pod.serviceAccountName).toBe('usher');
    expect(container.image).toBe('ghcr.io/usher-dev/usher:0.1.0');
    expect(container.args).toEqual(['--config', '/etc/usher/config.yaml']);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));
    expect(env).toMatchObject({ POD_NAME: 'metadata.name', POD_NAMESPACE: 'metadata.namespace', USHER_LEADER_ELECTION: 'true', USHER_LEASE_NAME: 'usher-leader', USHER_METRICS_PORT: '9090' });
    expect(container.ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9090, protocol: 'TCP' },
    ]);
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
    expect(container.resources).toEqual({ requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } });
    // A writable /tmp despite the read-only root file system; the config mounted read-only.
    expect(container.volumeMounts).toEqual([
      { name: 'config', mountPath: '/etc/usher', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ]);
    expect(deployment.spec.template.metadata.annotations['checksum/config']).toMatch(/^[0-9a-f]{64}$/);

    const service = find(manifests, 'Service') as Manifest & { spec: { ports: { name: string; port: number; targetPort: string }[] } };
    expect(service.spec.ports.map((p) => [p.name, p.port, p.targetPort])).toEqual([
      ['http', 80, 'http'],
      ['metrics', 9090, 'metrics'],
    ]);
  });

  it('keeps one pod through disruptions when there are several, and has no PDB for one', async () => {
    const pdb = find(await template(), 'PodDisruptionBudget') as Manifest & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } };
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'usher', 'app.kubernetes.io/instance': 'usher' });
    const single = await template({ replicaCount: 1 });
    expect(single.filter((m) => m.kind === 'PodDisruptionBudget')).toEqual([]);
    expect(deploymentOf(single).spec.replicas).toBe(1);
  });

  it('writes a configuration file that Usher’s own loader accepts, with Usher’s defaults', async () => {
    const text = configText(await template());
    const config = parseConfig(text, { source: 'ConfigMap usher' });
    expect(config.tenancy).toEqual({ namespaceLabel: 'usher.dev/tenant', instanceNamespaces: [] });
    expect(config.invitations).toMatchObject({ expireAfter: 'P7D', maxExpireAfter: 'P90D', linkDisclosure: 'Status', requireGroupOrRole: true });
    expect(config.accept).toMatchObject({ port: 8080, credentialsNamespace: 'usher-system' });
    expect(config.mail).toBeUndefined();
    expect(config.controller).toEqual({ workers: 4, resyncPeriodMs: 600_000 });
  });
});

describe('RBAC', () => {
  const expectedClusterRules: PolicyRule[] = [
    { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['usher.dev'], resources: ['userinvitations/status'], verbs: ['update'] },
    { apiGroups: ['usher.dev'], resources: ['users'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
  ];

  it('grants exactly what Usher calls, with no wildcard anywhere', async () => {
    const manifests = await template();
    const clusterRole = find(manifests, 'ClusterRole') as Manifest & { rules: PolicyRule[] };
    expect(clusterRole.rules).toEqual(expectedClusterRules);
    const role = find(manifests, 'Role') as Manifest & { rules: PolicyRule[] };
    expect(role.metadata.namespace).toBe('usher-system');
    expect(role.rules).toEqual([
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['usher-leader'], verbs: ['get', 'update', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    ]);
    for (const rule of [...clusterRole.rules, ...role.rules]) {
      for (const value of [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs, ...(rule.resourceNames ?? []), ...(rule.nonResourceURLs ?? [])]) {
        expect(value).not.toContain('*');
      }
    }
  });

  it('binds both roles to the chart’s ServiceAccount, and the Role to a custom Lease name', async () => {
    const manifests = await template({ serviceAccount: { name: 'usher-operator' }, leaderElection: { leaseName: 'usher-lock' } }, { namespace: 'platform' });
    for (const kind of ['ClusterRoleBinding', 'RoleBinding']) {
      const binding = find(manifests, kind) as Manifest & { subjects: { kind: string; name: string; namespace: string }[] };
      expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'usher-operator', namespace: 'platform' }]);
    }
    expect(find(manifests, 'ServiceAccount').metadata).toMatchObject({ name: 'usher-operator', namespace: 'platform' });
    const role = find(manifests, 'Role') as Manifest & { rules: PolicyRule[] };
    expect(role.rules[0]?.resourceNames).toEqual(['usher-lock']);
    const env = containerOf(manifests).env.find((e) => e.name === 'USHER_LEASE_NAME');
    expect(env?.value).toBe('usher-lock');
  });
});

describe('everything switched on (mail, SSO, CSRF key, Ingress, ServiceMonitor)', () => {
  it('mounts each referenced Secret as the file the configuration names, and nothing secret is in the ConfigMap', async () => {
    const manifests = await template(FULL_VALUES);
    const text = configText(manifests);
    const pod = deploymentOf(manifests).spec.template.spec;
    const container = containerOf(manifests);
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
    const config = parseConfig(text, { source: 'ConfigMap usher', readFile });
    expect(files).toEqual({
      '/var/run/secrets/usher/mail/smtp-password': 'usher-smtp',
      '/var/run/secrets/usher/oidc/client-secret': 'usher-oidc',
      '/var/run/secrets/usher/csrf/csrf-key': 'usher-csrf',
    });
    expect(config.mail).toMatchObject({ host: 'smtp.example.com', port: 465, tls: 'implicit', from: 'Platform <no-reply@example.com>', replyTo: 'help@example.com', auth: { user: 'no-reply@example.com', password: 'secret-from-file' } });
    expect(config.accept.oidc).toEqual({ issuer: 'https://login.example.com', clientId: 'usher', clientSecret: 'secret-from-file' });
    expect(config.accept).toMatchObject({ loginUrl: 'https://console.example.com', trustProxy: ['10.0.0.0/8'], csrfKey: 'k'.repeat(48) });
    expect(config.baseUrl).toBe('https://join.example.com');
    expect(config.tenancy.instanceNamespaces).toEqual(['platform-admins']);
    expect(text).not.toContain('secret-from-file');
  });

  it('publishes the acceptance page (only) through the Ingress, with TLS, and derives baseUrl from its host', async () => {
    const values = { ...FULL_VALUES, config: { ...FULL_VALUES.config, baseUrl: '' } };
    const manifests = await template(values);
    const ingress = find(manifests, 'Ingress') as Manifest & { spec: Record<string, unknown> };
    expect(ingress.metadata.annotations).toEqual({ 'cert-manager.io/cluster-issuer': 'letsencrypt' });
    expect(ingress.spec).toEqual({
      ingressClassName: 'nginx',
      tls: [{ hosts: ['join.example.com'], secretName: 'join-example-com-tls' }],
      rules: [{ host: 'join.example.com', http: { paths: [{ path: '/', pathType: 'Prefix', backend: { service: { name: 'usher', port: { name: 'http' } } } }] } }],
    });
    expect(parseConfig(configText(manifests), { readFile: () => 'k'.repeat(48) }).baseUrl).toBe('https://join.example.com');
  });

  it('adds a ServiceMonitor scraping the metrics port', async () => {
    const monitor = find(await template(FULL_VALUES), 'ServiceMonitor') as Manifest & { spec: Record<string, unknown> };
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.metadata.labels).toMatchObject({ release: 'prometheus' });
    expect(monitor.spec).toEqual({
      selector: { matchLabels: { 'app.kubernetes.io/name': 'usher', 'app.kubernetes.io/instance': 'usher' } },
      namespaceSelector: { matchNames: ['usher-system'] },
      endpoints: [{ port: 'metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }],
    });
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
      expect(result.stdout).toContain('validatingadmissionpolicy.admissionregistration.k8s.io/usher-who-may-invite-whom created (server dry run)');
      if (values === FULL_VALUES) expect(result.stdout).toContain('ingress.networking.k8s.io/usher created (server dry run)');
    }
  });
});

describe('the admission policy', () => {
  it('carries the configured tenant label and Instance namespaces into its CEL, and can be switched off', async () => {
    const manifests = await template({ config: { tenancy: { namespaceLabel: 'platform.example.com/tenant', instanceNamespaces: ['ops', 'platform-admins'] } }, admissionPolicy: { validationActions: ['Warn', 'Audit'] } });
    const policy = find(manifests, 'ValidatingAdmissionPolicy') as Manifest & { spec: { variables: { name: string; expression: string }[]; validations: { expression: string; messageExpression: string }[] } };
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

  it('refuses settings that belong together but are missing, saying which key to set', async () => {
    expect(await failure({ config: { mail: { enabled: true, from: 'a@example.com' } } })).toContain('config.mail.enabled is true: set config.mail.host');
    expect(await failure({ config: { mail: { enabled: true, host: 'smtp', from: 'a@example.com', auth: { user: 'u' } } } })).toContain('set config.mail.auth.existingSecret');
    expect(await failure({ config: { accept: { oidc: { enabled: true, issuer: 'https://login.example.com', clientId: 'usher' } } } })).toContain('set config.accept.oidc.clientSecret.existingSecret');
    expect(await failure({ ingress: { enabled: true } })).toContain('ingress.enabled is true: set ingress.host');
    expect(await failure({ leaderElection: { enabled: false } })).toContain('replicaCount > 1 needs leaderElection.enabled');
  });
});
