// The chart's `helm test` hook (templates/tests/check.yaml). The harness has no
// kubelet, so no Pod ever runs here and `helm test` on a real install would
// only time out; this file tests what can be tested without one: the hook
// renders as test hooks of the operator's image, the API server accepts every
// object of it (server-side dry run), and the check script it ships, run by
// Node as the hook's own ServiceAccount with only the hook's Role, passes
// against the real API server when the Deployments are ready (their status is
// written here, as the kubelet and the deployment controller would) and fails,
// naming the Deployment, when one is not.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { load } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { kubectl, kubectlOk } from '../support/cluster.ts';
import { CHART, helmOk, parseManifests, useHelm, type Manifest } from './support.ts';

const run = promisify(execFile);
const suffix = Math.random().toString(16).slice(2, 8);
const RELEASE = `hook-${suffix}`;
const FULLNAME = `${RELEASE}-usher`;
const NAMESPACE = 'usher-system';
const LABEL = `usher.dev/hook-test-${suffix}`;
const dir = mkdtempSync(join(tmpdir(), 'usher-hook-'));
useHelm();

let hook: Manifest[] = [];
let policy = '';

async function render(showOnly: string, sets: string[] = []): Promise<string> {
  return helmOk(['template', RELEASE, CHART, '-n', NAMESPACE, ...sets.flatMap((s) => ['--set', s]), '--show-only', showOnly]);
}

function deployment(name: string): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: NAMESPACE },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'c', image: 'usher:test' }] } },
    },
  });
}

/** Writes a Deployment's status as the deployment controller would once its pods are ready (or not). */
async function setReady(name: string, ready: number): Promise<void> {
  const status = { observedGeneration: 1, replicas: 2, updatedReplicas: 2, readyReplicas: ready, availableReplicas: ready };
  await kubectlOk(['patch', 'deployment', name, '-n', NAMESPACE, '--subresource=status', '--type=merge', '-p', JSON.stringify({ status })]);
}

/** Runs the hook's script with Node, as the hook's ServiceAccount, against the harness's API server. */
async function check(waitSeconds = 0): Promise<{ code: number; out: string }> {
  const configMap = hook.find((m) => m.kind === 'ConfigMap') as Manifest & { data: Record<string, string> };
  const script = join(dir, 'check.mjs');
  writeFileSync(script, configMap.data['check.mjs'] ?? '');
  const sa = join(dir, 'sa');
  rmSync(sa, { recursive: true, force: true });
  await kubectlOk(['create', 'token', `${FULLNAME}-test`, '-n', NAMESPACE, '--duration=10m']).then((token) => {
    writeFileSync(join(dir, 'token'), token.trim());
  });
  const admin = load(readFileSync(inject('kubeconfigs').admin, 'utf8')) as { clusters: { cluster: Record<string, string> }[] };
  const cluster = admin.clusters[0]?.cluster ?? {};
  const server = new URL(cluster.server ?? '');
  const caFile = cluster['certificate-authority'];
  writeFileSync(join(dir, 'ca.crt'), caFile ? readFileSync(caFile) : '');
  const env = {
    ...process.env,
    SA_DIR: dir,
    KUBERNETES_SERVICE_HOST: server.hostname,
    KUBERNETES_SERVICE_PORT: server.port,
    RELEASE_NAMESPACE: NAMESPACE,
    DEPLOYMENTS: `${FULLNAME},${FULLNAME}-accept`,
    WAIT_SECONDS: String(waitSeconds),
    ...(caFile ? {} : { NODE_TLS_REJECT_UNAUTHORIZED: '0' }),
  };
  try {
    const { stdout } = await run(process.execPath, [script], { env });
    return { code: 0, out: stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

beforeAll(async () => {
  hook = parseManifests(await render('templates/tests/check.yaml'));
  policy = await render('templates/admission-policy.yaml', [`admissionPolicy.namespaceSelector.matchLabels.${LABEL.replaceAll('.', '\\.')}=yes`]);
  for (const name of [FULLNAME, `${FULLNAME}-accept`]) await kubectlOk(['apply', '-f', '-'], { input: deployment(name) });
});

afterAll(async () => {
  await kubectl(['delete', '-f', '-', '--ignore-not-found', '--wait=false'], { input: policy });
  await kubectl(['label', 'namespace', NAMESPACE, `${LABEL}-`]);
  await kubectl(['delete', 'deployment', FULLNAME, `${FULLNAME}-accept`, '-n', NAMESPACE, '--ignore-not-found']);
  await kubectl(['delete', 'pod,configmap,rolebinding,role,serviceaccount', `${FULLNAME}-test`, '-n', NAMESPACE, '--ignore-not-found']);
  rmSync(dir, { recursive: true, force: true });
});

describe('the helm test hook', () => {
  it('is a test Pod of the operator image, hardened like the operator, with its own ServiceAccount and a Role that reads two Deployments and dry-runs invitations', () => {
    expect(hook.map((m) => `${m.kind}/${m.metadata.name}`)).toEqual([
      `ServiceAccount/${FULLNAME}-test`,
      `ConfigMap/${FULLNAME}-test`,
      `Role/${FULLNAME}-test`,
      `RoleBinding/${FULLNAME}-test`,
      `Pod/${FULLNAME}-test`,
    ]);
    for (const m of hook) {
      expect(m.metadata.annotations?.['helm.sh/hook'], m.kind).toBe('test');
      expect(m.metadata.namespace, m.kind).toBe(NAMESPACE);
    }
    // The Pod stays for `helm test --logs`; what it needed goes once the test passed.
    for (const m of hook.filter((x) => x.kind !== 'Pod'))
      expect(m.metadata.annotations?.['helm.sh/hook-delete-policy']).toBe('before-hook-creation,hook-succeeded');
    const pod = hook.find((m) => m.kind === 'Pod') as Manifest & {
      spec: { serviceAccountName: string; restartPolicy: string; containers: { image: string; command: string[]; securityContext: Record<string, unknown> }[] };
    };
    expect(pod.spec.serviceAccountName).toBe(`${FULLNAME}-test`);
    expect(pod.spec.restartPolicy).toBe('Never');
    expect(pod.spec.containers[0]?.image).toBe('ghcr.io/usher-dev/usher:0.1.0');
    expect(pod.spec.containers[0]?.command).toEqual(['/nodejs/bin/node', '/usher-test/check.mjs']);
    expect(pod.spec.containers[0]?.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, runAsNonRoot: true });
    const role = hook.find((m) => m.kind === 'Role') as Manifest & { rules: unknown[] };
    expect(role.rules).toEqual([
      { apiGroups: ['apps'], resources: ['deployments'], resourceNames: [FULLNAME, `${FULLNAME}-accept`], verbs: ['get'] },
      { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: ['create'] },
    ]);
  });

  it('is accepted by the API server as it is (server-side dry run of every object)', async () => {
    const result = await kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: await render('templates/tests/check.yaml') });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`pod/${FULLNAME}-test serverside-applied (server dry run)`);
  });

  it('its check passes when the operator is ready, as the hook’s ServiceAccount with only the hook’s Role', async () => {
    const rbac = hook.filter((m) => m.kind !== 'Pod' && m.kind !== 'ConfigMap');
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: rbac }) });
    for (const name of [FULLNAME, `${FULLNAME}-accept`]) await setReady(name, 2);
    const passed = await check();
    process.stdout.write(`helm test check, operator ready:\n${passed.out}`);
    expect(passed.code, passed.out).toBe(0);
    expect(passed.out).toContain(`ok   Deployment ${FULLNAME}: 2/2 ready`);
    expect(passed.out).toContain(`ok   Deployment ${FULLNAME}-accept: 2/2 ready`);
    expect(passed.out).toContain('ok   CRDs served: usher.dev/v1alpha1 userinvitations, users');
    expect(passed.out).toContain('ok   dry run: a well-formed invitation accepted; a malformed one refused (422, spec.email)');
    // The dry run stored nothing.
    expect((await kubectlOk(['get', 'userinvitations', '-n', NAMESPACE, '-o', 'name'])).trim()).toBe('');
  });

  it('its dry run also passes when the admission policy refuses the invitation, since the schema passed first', async () => {
    await kubectlOk(['apply', '-f', '-'], { input: policy });
    await kubectlOk(['label', 'namespace', NAMESPACE, `${LABEL}=yes`]);
    let out = '';
    await expect
      .poll(
        async () => {
          out = (await check()).out;
          return out;
        },
        { timeout: 20_000, interval: 500 },
      )
      .toContain('refused by the admission policy');
    process.stdout.write(`helm test check, admission policy on:\n${out}`);
    expect(out).toContain(`has no usher.dev/tenant label, so it may not invite into tenant helm-test`);
    expect(out).not.toContain('FAIL');
  });

  it('its check fails, naming the Deployment, when the controller is not ready', async () => {
    await setReady(FULLNAME, 0);
    const failed = await check(0);
    process.stdout.write(`helm test check, controller not ready:\n${failed.out}`);
    expect(failed.code).toBe(1);
    expect(failed.out).toContain(`FAIL Deployment ${FULLNAME}: 0/2 ready after 0s`);
    expect(failed.out).toContain(`ok   Deployment ${FULLNAME}-accept: 2/2 ready`);
  });
});
