// What Flux and Argo CD say of live invitations in every phase: the real
// kstatus library (status.Compute, what Flux, kpt and Config Sync use) and the
// chart's Argo CD Lua health check run in gopher-lua as Argo CD runs it, both
// on the same objects, made by the real controller (test/gitops/phases.ts). The
// README's "Flux" and "Argo CD" sections document these results.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Condition, UserInvitation } from '../../src/api/types.ts';
import { withOwnedCondition } from '../../src/invitation/user-status.ts';
import { kubectlOk, useNamespace } from '../support/cluster.ts';
import { argoHealth, ensureArgoHealth, ensureKstatus, kstatus, type Health } from './checks.ts';
import { CASES, deleteUsers, invitationsInEveryPhase, type Case } from './phases.ts';

const chart = join(import.meta.dirname, '..', '..', 'charts', 'usher');
const INVITATION_CHECK = join(chart, 'health', 'usher.dev_UserInvitation.lua');
const USER_CHECK = join(chart, 'health', 'usher.dev_User.lua');

/** The documented health of each case: kstatus's status, Argo CD's, and a part of each message. */
const EXPECTED: Record<Case, { kstatus: string; argo: string; message: RegExp }> = {
  'not-reconciled': { kstatus: 'Current', argo: 'Progressing', message: /./ },
  'pending-sending': { kstatus: 'InProgress', argo: 'Progressing', message: /Sending the invitation to held\+/ },
  'pending-mail-retrying': { kstatus: 'InProgress', argo: 'Progressing', message: /failed \(attempt 1\).*421.*Retrying in/ },
  'pending-no-mail-server': { kstatus: 'Current', argo: 'Suspended', message: /No mail server is configured: share the link in status\.link/ },
  sent: { kstatus: 'Current', argo: 'Healthy', message: /Invitation mailed to sent/ },
  accepted: { kstatus: 'Current', argo: 'Healthy', message: /Accepted by accepted/ },
  'user-created': { kstatus: 'Current', argo: 'Healthy', message: /was created directly/ },
  'failed-invalid-spec': { kstatus: 'Failed', argo: 'Degraded', message: /spec\.expireAfter: P1000D is longer than the maximum/ },
  'failed-mail-rejected': { kstatus: 'Failed', argo: 'Degraded', message: /refused the invitation.*550.*No such user here/ },
  expired: { kstatus: 'Failed', argo: 'Degraded', message: /expired at .*Reissue it with: kubectl annotate userinvitation expired/ },
  'edited-not-yet-observed': { kstatus: 'InProgress', argo: 'Progressing', message: /generation (is )?2/ },
};

const namespace = useNamespace('gitops');
let invitations: Record<Case, UserInvitation>;
let users: string[] = [];
const byName = (results: Health[]): Map<string, Health> => new Map(results.map((r, i) => [CASES[i] ?? r.name, r]));

beforeAll(async () => {
  // The first run builds the two Go helpers (under a minute); later runs find them in the cache.
  await Promise.all([ensureKstatus(), ensureArgoHealth()]);
  await kubectlOk(['label', 'namespace', namespace(), 'usher.dev/tenant=acme']);
  ({ invitations, users } = await invitationsInEveryPhase(namespace()));
}, 600_000);

afterAll(async () => {
  await deleteUsers(users);
});

describe('GitOps health of live invitations in every phase', () => {
  it('kstatus (Flux) and the Lua check (Argo CD) give the documented result for each', async () => {
    const objects = CASES.map((c) => invitations[c]);
    const flux = byName(await kstatus(objects));
    const argo = byName(await argoHealth(INVITATION_CHECK, objects));
    const table = CASES.map((c) => {
      const inv = invitations[c];
      const ready = inv.status?.conditions?.find((x) => x.type === 'Ready');
      return `${c.padEnd(24)} ${(inv.status?.phase ?? '-').padEnd(12)} Ready=${(ready?.status ?? '-').padEnd(6)} kstatus ${flux.get(c)?.status ?? '?'}: ${flux.get(c)?.message ?? ''}\n${''.padEnd(56)} argo ${argo.get(c)?.status ?? '?'}: ${argo.get(c)?.message ?? ''}`;
    });
    process.stdout.write(`GitOps health by case:\n${table.join('\n')}\n`);

    for (const c of CASES) {
      expect({ case: c, kstatus: flux.get(c)?.status, argo: argo.get(c)?.status }).toEqual({ case: c, kstatus: EXPECTED[c].kstatus, argo: EXPECTED[c].argo });
    }
    // The message each tool shows is Usher's own condition message (what to do, for the stalled ones).
    for (const c of CASES.filter((x) => x !== 'not-reconciled')) {
      const message = c === 'edited-not-yet-observed' ? (flux.get(c)?.message ?? '') : (argo.get(c)?.message ?? '');
      expect(message, c).toMatch(EXPECTED[c].message);
    }
    for (const c of ['failed-invalid-spec', 'failed-mail-rejected', 'expired', 'pending-sending', 'pending-mail-retrying'] as const) {
      expect(flux.get(c)?.message, c).toBe(argo.get(c)?.message);
    }
  });

  it('the User check: Ready is Healthy, Stalled Degraded, a wait that ends by itself Progressing, whichever controller said it', async () => {
    const tag = namespace().split('-').pop() ?? '';
    const at = new Date('2026-12-01T12:00:00Z');
    // The conditions as Usher's controllers write them: each its own, the summary from all (src/invitation/user-status.ts).
    const owned = (...conditions: [string, 'True' | 'False', string, string][]): Condition[] =>
      conditions.reduce<Condition[]>((list, [type, status, reason, message]) => withOwnedCondition(list, { type, status, reason, message }, 1, at), []);
    const cases = {
      'no-status': { argo: 'Progressing', conditions: undefined },
      provisioned: { argo: 'Healthy', conditions: owned(['Provisioned', 'True', 'Created', 'Created the account with the User’s access.']) },
      'provider-down': { argo: 'Progressing', conditions: owned(['Provisioned', 'False', 'ProviderUnavailable', 'Keycloak answered 503.']) },
      'account-exists': { argo: 'Degraded', conditions: owned(['Provisioned', 'False', 'AccountExists', 'An account with this address exists.']) },
      'bound-only': { argo: 'Healthy', conditions: owned(['Bound', 'True', 'Bound', '2 bindings in place.']) },
      'bind-forbidden': {
        argo: 'Degraded',
        conditions: owned(['Provisioned', 'True', 'Created', 'Created.'], ['Bound', 'False', 'BindForbidden', 'The API server refused a binding.']),
      },
      'waiting-for-account': { argo: 'Progressing', conditions: owned(['Bound', 'False', 'WaitingForAccount', 'No RoleBindings yet.']) },
    } as const;
    const names = Object.keys(cases).map((c) => `gitops-${c}-${tag}`);
    try {
      const objects: object[] = [];
      for (const [c, { conditions }] of Object.entries(cases)) {
        const name = `gitops-${c}-${tag}`;
        const user = { apiVersion: 'usher.dev/v1alpha1', kind: 'User', metadata: { name }, spec: { email: `${c}+${tag}@example.com` } };
        let live = JSON.parse(await kubectlOk(['create', '-o', 'json', '-f', '-'], { input: JSON.stringify(user) })) as { metadata: { generation?: number } };
        if (conditions) {
          const status = {
            observedGeneration: live.metadata.generation ?? 1,
            conditions,
          };
          live = JSON.parse(
            await kubectlOk(['patch', 'users.usher.dev', name, '--subresource=status', '--type=merge', '-o', 'json', '-p', JSON.stringify({ status })]),
          ) as typeof live;
        }
        objects.push(live);
      }
      const results = await argoHealth(USER_CHECK, objects);
      process.stdout.write(`User health: ${results.map((r) => `${r.name.replace(`-${tag}`, '')} ${r.status}: ${r.message}`).join('; ')}\n`);
      expect(results.map((r) => r.status)).toEqual(Object.values(cases).map((c) => c.argo));
    } finally {
      await kubectlOk(['delete', 'users.usher.dev', ...names, '--ignore-not-found']);
    }
  });

  it('the README’s command puts both checks into argocd-cm, keeping what was there', async () => {
    const argocd = `${namespace()}-argocd`;
    await kubectlOk(['create', 'namespace', argocd]);
    try {
      await kubectlOk(['create', 'configmap', 'argocd-cm', '-n', argocd, '--from-literal=url=https://argocd.example.com']);
      const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
      const command = /\n(kubectl -n argocd create configmap argocd-cm[^`]+?)\n```/.exec(readme)?.[1];
      expect(command).toBeDefined();
      await promisify(execFile)('bash', ['-euo', 'pipefail', '-c', (command ?? '').replaceAll('-n argocd', `-n ${argocd}`)], {
        cwd: join(import.meta.dirname, '..', '..'),
        env: { ...process.env, KUBECONFIG: inject('kubeconfigs').admin },
      });
      const cm = JSON.parse(await kubectlOk(['get', 'configmap', 'argocd-cm', '-n', argocd, '-o', 'json'])) as { data: Record<string, string> };
      expect(cm.data).toEqual({
        url: 'https://argocd.example.com',
        'resource.customizations.health.usher.dev_UserInvitation': readFileSync(INVITATION_CHECK, 'utf8'),
        'resource.customizations.health.usher.dev_User': readFileSync(USER_CHECK, 'utf8'),
      });
    } finally {
      await kubectlOk(['delete', 'namespace', argocd, '--wait=false']);
    }
  });
});
