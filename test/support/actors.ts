// The people of docs/security.md as identities of their own: each actor is a
// ServiceAccount bound to exactly the Role the threat model gives it, and
// acts through kubectl with that ServiceAccount's token, so that a test shows
// what that actor, and no one more privileged, can do.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { load } from 'js-yaml';
import { kubectl, kubectlOk, type KubectlResult } from './cluster.ts';

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface Actor {
  name: string;
  /** kubectl as this actor only. */
  kubectl(args: string[], input?: string): Promise<KubectlResult>;
  /** The actor's kubeconfig (its token), for clients other than kubectl. */
  kubeconfig: string;
}

/** Creates the actor's ServiceAccount in `namespace`, a Role there with `rules`, and binds them. */
export async function actor(name: string, namespace: string, rules: PolicyRule[]): Promise<Actor> {
  const docs = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace }, rules },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace }],
    },
  ];
  await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs }) });
  const token = (await kubectlOk(['create', 'token', name, '-n', namespace, '--duration=1h'])).trim();
  // The admin kubeconfig's server and CA, with the actor's token and nothing else.
  const admin = load(readFileSync(inject('kubeconfigs').admin, 'utf8')) as { clusters: { cluster: Record<string, string> }[] };
  const cluster = admin.clusters[0]?.cluster ?? {};
  const path = join(tmpdir(), `usher-actor-${name}-${randomBytes(3).toString('hex')}.kubeconfig`);
  writeFileSync(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster }],
      users: [{ name, user: { token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: name } }],
      'current-context': 'c',
    }),
    { mode: 0o600 },
  );
  return {
    name,
    kubeconfig: path,
    kubectl: (args, input) => kubectl(args, { kubeconfig: path, ...(input === undefined ? {} : { input }) }),
  };
}
