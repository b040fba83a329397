// The invitation keeps owning its membership, end to end: the real controller
// (as the chart's `operator` identity, with its identity controller on an
// in-memory identity provider) and the real acceptance page (as `accept`) on
// the real API server. An edit of groups on an accepted invitation reaches the
// User and the account projected from it; deleting invitations removes their
// memberships and, for the last one, the User with its credentials Secret (and
// the account is disabled); a namespace's deletion is not held up; the API
// server refuses a change of address; `Keep` keeps the membership.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { User, UserInvitation, UserInvitationSpec } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { Controller } from '../../src/controller/controller.ts';
import { MEMBERSHIP_FINALIZER } from '../../src/invitation/decide.ts';
import { IDENTITY_FINALIZER } from '../../src/invitation/identity.ts';
import { credentialsSecretName, userNameFor } from '../../src/invitation/naming.ts';
import { loadKubeConfig } from '../../src/runtime/client.ts';
import { acceptWithPassword, acceptYaml, startPage, USHER_NAMESPACE, type RunningPage } from '../accept/support.ts';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { argoHealth, ensureArgoHealth, ensureKstatus, kstatus } from '../gitops/checks.ts';
import { FakeIdentityProvider } from './fake-identity.ts';
import { actor, type Actor } from '../support/actors.ts';

const log = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const PASSWORD = 'violet kettle over the harbour';
const tag = randomBytes(3).toString('hex');
const acme = `members-acme-${tag}`;
const globex = `members-globex-${tag}`;
const address = (local: string): string => `${local}+${tag}@example.com`;

let page: RunningPage;
let controller: Controller;
const provider = new FakeIdentityProvider();

/** The controller as the chart runs it, with identity on (the in-memory provider) unless `access` says Keep. */
function startController(access: Partial<UsherConfig['access']> = {}, identity = true): Controller {
  const base = parseConfig(
    `usher:\n  baseUrl: ${page.url}\n  identity:\n    provider: keycloak\n    keycloak:\n      url: https://keycloak.invalid\n      realm: r\n      clientId: usher\n      clientSecretEnv: KC\n`,
    { source: 'test-config.yaml', env: { KC: 'unused' }, component: 'controller' },
  );
  const config: UsherConfig = { ...base, access: { ...base.access, ...access } };
  if (!identity) delete config.identity;
  return new Controller({
    kubeConfig: loadKubeConfig(inject('kubeconfigs').operator),
    config,
    log,
    ...(identity ? { identity: provider } : {}),
  });
}

async function read(namespace: string, name: string): Promise<UserInvitation | undefined> {
  const got = await kubectl(['get', 'userinvitation', name, '-n', namespace, '-o', 'json']);
  return got.code === 0 ? (JSON.parse(got.stdout) as UserInvitation) : undefined;
}

async function user(name: string): Promise<User | undefined> {
  const got = await kubectl(['get', 'users.usher.dev', name, '-o', 'json']);
  return got.code === 0 ? (JSON.parse(got.stdout) as User) : undefined;
}

async function secretExists(namespace: string, name: string): Promise<boolean> {
  return (await kubectl(['get', 'secret', name, '-n', namespace])).code === 0;
}

async function waitFor(namespace: string, name: string, what: (inv: UserInvitation) => boolean, description: string): Promise<UserInvitation> {
  let last: UserInvitation | undefined;
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
    last = await read(namespace, name);
    if (last && what(last)) return last;
  }
  throw new Error(`${namespace}/${name} never became ${description}: ${JSON.stringify(last?.status)}`);
}

const ready = (inv: UserInvitation) => inv.status?.conditions?.find((c) => c.type === 'Ready');
const settled = (phase: string) => (inv: UserInvitation) =>
  inv.status?.phase === phase && inv.status.observedGeneration === inv.metadata.generation && ready(inv)?.status === 'True';

async function create(namespace: string, name: string, spec: UserInvitationSpec): Promise<void> {
  const doc = { apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', metadata: { name, namespace }, spec };
  await kubectlOk(['create', '-f', '-'], { input: JSON.stringify(doc) });
}

/** Creates the invitation, waits for its link and accepts it on the page with a new password; returns it Accepted. */
async function invitedAndAccepted(namespace: string, name: string, spec: UserInvitationSpec): Promise<UserInvitation> {
  await create(namespace, name, spec);
  const pending = await waitFor(namespace, name, (inv) => inv.status?.link !== undefined, 'Pending with its link');
  // The finalizer was there before the link: an acceptance can never outrun it.
  expect(pending.metadata.finalizers).toEqual([MEMBERSHIP_FINALIZER]);
  const answer = await acceptWithPassword(pending.status?.link ?? '', { password: PASSWORD });
  expect(answer.status, answer.body).toBe(200);
  return waitFor(namespace, name, settled('Accepted'), 'Accepted and Ready');
}

/** Event reasons and messages about an object, oldest first. */
async function events(namespace: string, name: string): Promise<{ reason: string; note: string }[]> {
  const list = JSON.parse(await kubectlOk(['get', 'events.events.k8s.io', '-n', namespace, '--field-selector', `regarding.name=${name}`, '-o', 'json'])) as {
    items: { reason: string; note: string; eventTime?: string; metadata: { creationTimestamp: string } }[];
  };
  return list.items
    .sort((a, b) => (a.eventTime ?? a.metadata.creationTimestamp).localeCompare(b.eventTime ?? b.metadata.creationTimestamp))
    .map(({ reason, note }) => ({ reason, note }));
}

/** The account at the (in-memory) identity provider, with every group it is in. */
function accountOf(email: string): { enabled: boolean; groups: string[]; roles: string[] } | undefined {
  const account = [...provider.accounts.values()].find((a) => a.email === email);
  return account && { enabled: account.enabled, groups: [...account.allGroups].sort(), roles: [...account.roles].sort() };
}

beforeAll(async () => {
  for (const [namespace, tenant] of [
    [acme, 'acme'],
    [globex, 'globex'],
  ] as const) {
    await kubectlOk(['create', 'namespace', namespace]);
    await kubectlOk(['label', 'namespace', namespace, `usher.dev/tenant=${tenant}`]);
  }
  page = await startPage(() => acceptYaml(acme));
  controller = startController();
  await controller.start();
});

afterAll(async () => {
  await controller.stop();
  await page.server.close();
  await deleteNamespaces(acme, globex);
});

describe('an accepted invitation keeps owning its membership', () => {
  // docs/security.md, attack 9: the edits and deletions are made as a tenant admin of acme, with only
  // the rights on invitations of that one namespace that the chart's admin role aggregates.
  let tenantAdmin: Actor;
  beforeAll(async () => {
    tenantAdmin = await actor('members-tenant-admin', acme, [
      { apiGroups: ['usher.dev'], resources: ['userinvitations'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
    ]);
  });

  const email = address('jane');
  const userName = userNameFor(email);

  it('an edit of groups and roles reaches the User and its account; Ready and observedGeneration wait for it', async () => {
    const accepted = await invitedAndAccepted(acme, 'jane', { email, tenant: 'acme', groups: ['devs'] });
    expect(accepted.status?.user).toBe(userName);
    await expect.poll(() => accountOf(email)?.groups, { timeout: 10_000 }).toEqual(['/tenants/acme', '/tenants/acme/devs']);

    const started = performance.now();
    await kubectlOk([
      'patch',
      'userinvitation',
      'jane',
      '-n',
      acme,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { groups: ['devs', 'analysts'], roles: [{ name: 'developer', namespaces: ['company.team'] }] } }),
    ]);
    const edited = await waitFor(acme, 'jane', settled('Accepted'), 'Ready for its new generation');
    const tookMs = Math.round(performance.now() - started);
    expect(edited.metadata.generation).toBe(2);
    expect(ready(edited)).toMatchObject({ status: 'True', reason: 'Accepted', observedGeneration: 2 });

    const after = await user(userName);
    expect(after?.spec.memberships).toEqual([
      {
        scope: 'Tenant',
        tenant: 'acme',
        groups: ['devs', 'analysts'],
        roles: [{ name: 'developer', namespaces: ['company.team'] }],
        invitation: { namespace: acme, name: 'jane', uid: accepted.metadata.uid },
      },
    ]);
    // What is projected from the User follows: the account's groups and roles.
    await expect.poll(() => accountOf(email)?.groups, { timeout: 10_000 }).toEqual(['/tenants/acme', '/tenants/acme/analysts', '/tenants/acme/devs']);
    expect(accountOf(email)?.roles).toEqual(['acme/developer@company.team']);

    const onInvitation = await events(acme, 'jane');
    expect(onInvitation.at(-1)).toEqual({
      reason: 'MembershipUpdated',
      note: `User ${userName} now has tenant acme, groups devs, analysts, roles developer@company.team from this invitation.`,
    });
    await expect
      .poll(async () => (await events('default', userName)).map((e) => e.reason), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['MembershipUpdated', 'AccessUpdated']));
    process.stdout.write(`membership: groups edit reached User ${userName} and Ready=True for generation 2 in ${tookMs} ms\n`);
  });

  it('the API server refuses a change of address, scope or tenant once accepted, saying why', async () => {
    const refused = await tenantAdmin.kubectl([
      'patch',
      'userinvitation',
      'jane',
      '-n',
      acme,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { email: address('janet') } }),
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr.trim()).toBe(
      `The UserInvitation "jane" is invalid: spec.email: Forbidden: cannot change once the invitation is Accepted: the access it granted belongs to the User of ${email}. ` +
        `Invite ${address('janet')} with a new invitation (and delete this one to end the old access).`,
    );
    const tenant = await tenantAdmin.kubectl([
      'patch',
      'userinvitation',
      'jane',
      '-n',
      acme,
      '--type=merge',
      '-p',
      JSON.stringify({ spec: { tenant: 'globex' } }),
    ]);
    expect(tenant.stderr).toContain(
      'spec.tenant: Forbidden: cannot change once the invitation is Accepted: the access it granted is in tenant acme. Invite into tenant globex with a new invitation',
    );
    // A change of case is no change of address; nor is anything else refused.
    expect(
      (
        await tenantAdmin.kubectl([
          'patch',
          'userinvitation',
          'jane',
          '-n',
          acme,
          '--type=merge',
          '-p',
          JSON.stringify({ spec: { email: email.toUpperCase() } }),
        ])
      ).code,
    ).toBe(0);
    process.stdout.write(`membership: the email change was refused: ${refused.stderr.trim()}\n`);
  });

  it('an edit the rules refuse is not applied, and Flux and Argo CD show it Failed and Degraded with the reason', async () => {
    const before = (await user(userName))?.spec.memberships;
    await kubectlOk(['patch', 'userinvitation', 'jane', '-n', acme, '--type=merge', '-p', JSON.stringify({ spec: { groups: [], roles: [] } })]);
    const stalled = await waitFor(
      acme,
      'jane',
      (inv) =>
        inv.status?.observedGeneration === inv.metadata.generation && inv.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True') === true,
      'Stalled for its new generation',
    );
    expect(stalled.status?.phase).toBe('Accepted');
    expect(ready(stalled)).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(ready(stalled)?.message).toMatch(/at least one group or role.*The change is not applied: User .* keeps tenant acme, groups devs, analysts/);
    expect((await user(userName))?.spec.memberships).toEqual(before);
    await Promise.all([ensureKstatus(), ensureArgoHealth()]);
    const [flux] = await kstatus([stalled]);
    const [argo] = await argoHealth(join(import.meta.dirname, '..', '..', 'charts', 'usher', 'health', 'usher.dev_UserInvitation.lua'), [stalled]);
    expect({ flux: flux?.status, argo: argo?.status }).toEqual({ flux: 'Failed', argo: 'Degraded' });
    expect(argo?.message).toBe(ready(stalled)?.message);
    process.stdout.write(
      `membership: an edit leaving no group or role: kstatus ${flux?.status ?? ''}, Argo CD ${argo?.status ?? ''}: ${argo?.message ?? ''}\n`,
    );

    await kubectlOk(['patch', 'userinvitation', 'jane', '-n', acme, '--type=merge', '-p', JSON.stringify({ spec: { groups: ['devs', 'analysts'] } })]);
    await waitFor(acme, 'jane', settled('Accepted'), 'Ready again');
  }, 600_000);

  it('deleting invitations removes their memberships and, with the last one, the User, its credentials Secret and its account', async () => {
    // A second membership for the same person, from another namespace (the User is found by address).
    await create(globex, 'jane-direct', { email, tenant: 'globex', groups: ['ops'], createUserDirectly: true });
    await waitFor(globex, 'jane-direct', settled('UserCreated'), 'UserCreated');
    const two = await user(userName);
    expect(two?.spec.memberships?.map((m) => m.tenant)).toEqual(['acme', 'globex']);
    expect(two?.metadata.finalizers).toEqual([IDENTITY_FINALIZER]);
    expect(await secretExists(USHER_NAMESPACE, credentialsSecretName(userName))).toBe(true);

    // kubectl delete waits for the finalizer: the controller's part is done when it returns.
    // The tenant admin of acme cannot reach globex's invitation; deleting their own ends only the access it gave.
    expect((await tenantAdmin.kubectl(['delete', 'userinvitation', 'jane-direct', '-n', globex])).stderr).toMatch(/forbidden/i);
    let started = performance.now();
    expect((await tenantAdmin.kubectl(['delete', 'userinvitation', 'jane', '-n', acme, '--timeout=30s'])).code).toBe(0);
    const firstMs = Math.round(performance.now() - started);
    const one = await user(userName);
    expect(one?.spec.memberships).toEqual([expect.objectContaining({ tenant: 'globex', groups: ['ops'] })]);
    expect(one?.spec.authentication).toBe('Password');
    await expect.poll(() => accountOf(email)?.groups, { timeout: 10_000 }).toEqual(['/tenants/globex', '/tenants/globex/ops']);
    expect((await events(acme, 'jane')).map((e) => e.reason)).toContain('MembershipRemoved');

    // The last one: the User goes (after the identity controller disabled the account), and its credentials with it.
    started = performance.now();
    await kubectlOk(['delete', 'userinvitation', 'jane-direct', '-n', globex, '--timeout=30s']);
    const lastMs = Math.round(performance.now() - started);
    await expect.poll(() => user(userName), { timeout: 15_000 }).toBeUndefined();
    const goneMs = Math.round(performance.now() - started);
    await expect.poll(() => secretExists(USHER_NAMESPACE, credentialsSecretName(userName)), { timeout: 15_000 }).toBe(false);
    expect(accountOf(email)).toMatchObject({ enabled: false, groups: [], roles: [] });
    expect((await events(globex, 'jane-direct')).at(-1)?.reason).toBe('UserDeleted');
    process.stdout.write(
      `membership: deleting the first invitation took ${firstMs} ms (membership removed); the last, ${lastMs} ms, and the User was gone ${goneMs} ms after the delete (account disabled, credentials Secret garbage-collected)\n`,
    );
  });
});

describe('a namespace with accepted invitations', () => {
  it('is deleted promptly, and the memberships from it are gone', async () => {
    const doomed = `members-doomed-${tag}`;
    await kubectlOk(['create', 'namespace', doomed]);
    await kubectlOk(['label', 'namespace', doomed, 'usher.dev/tenant=acme']);
    const people = ['ann', 'bob', 'cy'].map(address);
    // Each person also has a membership elsewhere, which stays.
    for (const [i, email] of people.entries()) {
      await create(doomed, `direct-${i}`, { email, tenant: 'acme', groups: ['devs'], createUserDirectly: true });
      await create(globex, `elsewhere-${i}`, { email, tenant: 'globex', groups: ['ops'], createUserDirectly: true });
    }
    for (let i = 0; i < people.length; i++) {
      await waitFor(doomed, `direct-${i}`, settled('UserCreated'), 'UserCreated');
      await waitFor(globex, `elsewhere-${i}`, settled('UserCreated'), 'UserCreated');
    }
    // Usher's part, as the controller's own watch saw it: from the namespace controller's delete of the
    // invitations (their deletionTimestamp) until the last of them is gone (membership off, finalizer off).
    let deletingAt: number | undefined;
    let goneAt: number | undefined;
    let left = people.length;
    const onUpdate = (inv: UserInvitation): void => {
      if (inv.metadata.namespace === doomed && inv.metadata.deletionTimestamp) deletingAt ??= performance.now();
    };
    const onDelete = (inv: UserInvitation): void => {
      if (inv.metadata.namespace === doomed && --left === 0) goneAt = performance.now();
    };
    controller.cluster.invitations.on('update', onUpdate).on('delete', onDelete);
    const started = performance.now();
    await kubectlOk(['delete', 'namespace', doomed, '--wait=false']);
    await expect.poll(() => goneAt, { timeout: 30_000, interval: 20 }).toBeDefined();
    controller.cluster.invitations.off('update', onUpdate).off('delete', onDelete);
    const finalizedMs = Math.round((goneAt ?? 0) - (deletingAt ?? started));
    await kubectlOk(['wait', '--for=delete', `namespace/${doomed}`, '--timeout=60s']);
    const tookMs = Math.round(performance.now() - started);
    for (const email of people) {
      const kept = await user(userNameFor(email));
      expect(kept?.spec.memberships?.map((m) => m.invitation?.namespace)).toEqual([globex]);
    }

    // The same without finalizers: three invitations refused (an unlabelled namespace) hold none.
    const plain = `members-plain-${tag}`;
    await kubectlOk(['create', 'namespace', plain]);
    for (const [i, email] of people.entries()) await create(plain, `refused-${i}`, { email, tenant: 'acme', groups: ['devs'] });
    for (let i = 0; i < people.length; i++) {
      const refused = await waitFor(plain, `refused-${i}`, (inv) => inv.status?.phase === 'Failed', 'Failed');
      expect(refused.metadata.finalizers).toBeUndefined();
    }
    const plainStarted = performance.now();
    await kubectlOk(['delete', 'namespace', plain, '--timeout=60s']);
    const plainMs = Math.round(performance.now() - plainStarted);
    // Usher's finalizer costs one reconcile per invitation; the rest is the namespace controller's own passes.
    expect(finalizedMs).toBeLessThan(2_000);
    expect(tookMs).toBeLessThan(30_000);
    process.stdout.write(
      `membership: a namespace with ${people.length} invitations holding the finalizer: the namespace controller deleted them ${Math.round((deletingAt ?? started) - started)} ms after the namespace's delete, Usher finalized them within ${finalizedMs} ms, the namespace was gone at ${tookMs} ms (one with ${people.length} invitations without finalizers: ${plainMs} ms)\n`,
    );
  });
});

describe('with onInvitationDelete: Keep', () => {
  beforeAll(async () => {
    await controller.stop();
    controller = startController({ onInvitationDelete: 'Keep' }, false);
    await controller.start();
  });

  it('puts no finalizer on, takes earlier ones off, and a deletion leaves the membership', async () => {
    const email = address('kim');
    await create(acme, 'kim', { email, tenant: 'acme', groups: ['devs'], createUserDirectly: true });
    const created = await waitFor(acme, 'kim', settled('UserCreated'), 'UserCreated');
    expect(created.metadata.finalizers).toBeUndefined();
    // An invitation of the previous controller (RemoveMembership) loses its finalizer.
    await expect.poll(async () => (await read(globex, 'elsewhere-0'))?.metadata.finalizers, { timeout: 10_000 }).toBeUndefined();

    await kubectlOk(['delete', 'userinvitation', 'kim', '-n', acme, '--timeout=10s']);
    await new Promise((r) => setTimeout(r, 1000));
    const kept = await user(userNameFor(email));
    expect(kept?.spec.memberships).toEqual([
      expect.objectContaining({ tenant: 'acme', groups: ['devs'], invitation: expect.objectContaining({ name: 'kim' }) as unknown }),
    ]);
    process.stdout.write(`membership: with Keep, User ${kept?.metadata.name ?? ''} kept the membership of deleted invitation ${acme}/kim\n`);
  });
});
