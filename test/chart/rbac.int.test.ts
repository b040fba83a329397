// What each of Usher's identities may do, asked of the real authorizer. The
// chart's RBAC (templates/rbac.yaml, as helm renders it) is applied for a
// release of its own, whose namespace stands for Usher's; then, for
// linkDisclosure Status and Secret, every call the controller and the
// acceptance page make is checked allowed and every neighbouring one denied
// (SubjectAccessReviews for their ServiceAccounts, what `kubectl auth can-i
// --as` asks), and the whole list of rules each holds in Usher's namespace and
// in a tenant's (what `kubectl auth can-i --list` shows) is exactly the
// expected one. Then with config.rbac (memberships projected into RBAC): the
// controller may write bindings, but the API server lets it bind only the
// mapped ClusterRoles, which real requests as its ServiceAccount show (with
// Kubernetes' admin, edit and view filled in by the harness's ClusterRole
// aggregation controller: an empty ClusterRole may be bound by anyone). Last,
// the harness's own identities (operator, accept), which the other test files
// run Usher as, are held to the same.
import { randomBytes } from 'node:crypto';
import { loadAll } from 'js-yaml';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { deleteNamespaces, kubectl, kubectlOk } from '../support/cluster.ts';
import { CHART, helmOk, useHelm } from './support.ts';

useHelm();

const suffix = randomBytes(3).toString('hex');
/** Usher's namespace for this file: the release namespace, where records and password hashes live. */
const USHER = `usher-rbac-${suffix}`;
/** A tenant's namespace, where invitations (and, with linkDisclosure=Secret, link Secrets) live. */
const TENANT = `tenant-rbac-${suffix}`;
const RELEASE = `rbac-${suffix}`;
const LEASE = `${RELEASE}-usher-leader`;
const CONTROLLER = `system:serviceaccount:${USHER}:usher`;
const ACCEPT = `system:serviceaccount:${USHER}:usher-accept`;

type Disclosure = 'Status' | 'Secret';

/** Renders templates/rbac.yaml for this file's release and applies it (as admin); `extra`: more helm flags. */
async function applyRbac(linkDisclosure: Disclosure, extra: string[] = []): Promise<void> {
  const sets = ['serviceAccount.name=usher', 'accept.serviceAccount.name=usher-accept', `config.security.invitations.linkDisclosure=${linkDisclosure}`].flatMap(
    (v) => ['--set', v],
  );
  const rbac = await helmOk(['template', RELEASE, CHART, '--namespace', USHER, ...sets, ...extra, '--show-only', 'templates/rbac.yaml']);
  await kubectlOk(['apply', '-f', '-'], { input: rbac });
}

interface ResourceAttributes {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
  namespace: string;
}

/**
 * `kubectl auth can-i` words: VERB RESOURCE[.GROUP][/NAME] [--subresource=S] [-n NS | -A].
 * Without -n (cluster-scoped resources, or -A) the question is about all namespaces.
 */
function attributes(check: string): ResourceAttributes {
  const [verb = '', target = '', ...flags] = check.split(' ');
  const [qualified = '', name] = target.split('/');
  const dot = qualified.indexOf('.');
  const out: ResourceAttributes = {
    verb,
    resource: dot < 0 ? qualified : qualified.slice(0, dot),
    group: dot < 0 ? '' : qualified.slice(dot + 1),
    namespace: '',
  };
  if (name) out.name = name;
  for (let i = 0; i < flags.length; i++) {
    const flag = flags[i] ?? '';
    if (flag === '-n') out.namespace = flags[++i] ?? '';
    else if (flag.startsWith('--subresource=')) out.subresource = flag.slice('--subresource='.length);
    else if (flag !== '-A') throw new Error(`unknown flag ${flag} in "${check}"`);
  }
  return out;
}

/** Which of `checks` the ServiceAccount `user` is allowed, in one batch of SubjectAccessReviews (with a ServiceAccount's groups). */
async function allowed(user: string, checks: string[]): Promise<Record<string, boolean>> {
  const namespace = user.split(':')[2] ?? '';
  const groups = ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'];
  const items = checks.map((check) => ({
    apiVersion: 'authorization.k8s.io/v1',
    kind: 'SubjectAccessReview',
    spec: { user, groups, resourceAttributes: attributes(check) },
  }));
  const out = await kubectlOk(['create', '-o', 'yaml', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items }) });
  const reviews = loadAll(out) as { status: { allowed: boolean } }[];
  expect(reviews).toHaveLength(checks.length);
  return Object.fromEntries(checks.map((check, i) => [check, reviews[i]?.status.allowed === true]));
}

/** The checks whose answer is not `want`: what a failing test names. */
async function wrong(user: string, checks: string[], want: boolean): Promise<string[]> {
  const answers = await allowed(user, checks);
  return checks.filter((check) => answers[check] !== want);
}

/** RBAC changes reach the authorizer through its informers: wait until these answers are in. */
async function settle(user: string, checks: string[], want: boolean): Promise<void> {
  for (let i = 0; (await wrong(user, checks, want)).length > 0; i++) {
    if (i >= 100) throw new Error(`RBAC did not settle for ${user}: ${checks.join(', ')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Every rule `user` holds in `namespace` (a SelfSubjectRulesReview as that user, as `kubectl auth can-i --list` does), as "group/resource[:name] verb" lines. */
async function rulesHeld(user: string, namespace: string): Promise<string[]> {
  const review = { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace } };
  const out = await kubectlOk(['create', `--as=${user}`, '--validate=false', '-o', 'json', '-f', '-'], { input: JSON.stringify(review) });
  const { status } = JSON.parse(out) as {
    status: { resourceRules: { verbs: string[]; apiGroups?: string[]; resources?: string[]; resourceNames?: string[] }[]; incomplete: boolean };
  };
  expect(status.incomplete).toBe(false);
  const lines = status.resourceRules.flatMap((rule) =>
    (rule.apiGroups ?? []).flatMap((group) =>
      (rule.resources ?? []).flatMap((resource) =>
        (rule.resourceNames?.length ? rule.resourceNames : ['']).flatMap((name) =>
          rule.verbs.map((verb) => `${group || 'core'}/${resource}${name ? `:${name}` : ''} ${verb}`),
        ),
      ),
    ),
  );
  // Every authenticated user may ask what it may do (system:basic-user): not Usher's.
  const own = lines.filter((line) => !/^authentication\.k8s\.io\/selfsubjectreviews |^authorization\.k8s\.io\/selfsubject(access|rules)reviews /.test(line));
  return [...new Set(own)].sort();
}

/** "group/resource[:name] verb verb ..." rows, as rulesHeld() lists them, one line per verb. */
function expand(rows: string[]): string[] {
  return [
    ...new Set(
      rows.flatMap((row) => {
        const [target = '', ...verbs] = row.split(' ');
        return verbs.map((verb) => `${target} ${verb}`);
      }),
    ),
  ].sort();
}

// What each identity holds, rule by rule (templates/rbac.yaml says why).
const CONTROLLER_CLUSTER = [
  'usher.dev/userinvitations get list watch update',
  'usher.dev/userinvitations/status update',
  'usher.dev/users get list watch create update delete',
  'core/namespaces get list watch',
  'events.k8s.io/events create patch',
];
const CONTROLLER_LINK_SECRETS = ['core/secrets get list watch create update'];
const CONTROLLER_IN_USHER = [
  'core/secrets get list watch create update delete',
  `coordination.k8s.io/leases:${LEASE} get update patch`,
  'coordination.k8s.io/leases create',
];
const ACCEPT_CLUSTER = ['usher.dev/userinvitations get list watch', 'core/namespaces get list watch', 'usher.dev/users get list watch create update delete'];
const ACCEPT_IN_USHER = ['core/secrets get list watch create update'];

// The calls each makes, as `kubectl auth can-i` words.
const CONTROLLER_CALLS = [
  // The invitation informer (all namespaces), a read by name, and status written with PUT.
  'list userinvitations.usher.dev -A',
  'watch userinvitations.usher.dev -A',
  `get userinvitations.usher.dev -n ${TENANT}`,
  `update userinvitations.usher.dev --subresource=status -n ${TENANT}`,
  // The usher.dev/membership finalizer, added and removed with PUT.
  `update userinvitations.usher.dev -n ${TENANT}`,
  // Users: informer, create, update to add, change and remove memberships, delete one left with none.
  'list users.usher.dev',
  'watch users.usher.dev',
  'get users.usher.dev',
  'create users.usher.dev',
  'update users.usher.dev',
  'delete users.usher.dev',
  // Tenant labels.
  'list namespaces',
  'watch namespaces',
  'get namespaces',
  // Events on invitations.
  `create events.events.k8s.io -n ${TENANT}`,
  `patch events.events.k8s.io -n ${TENANT}`,
  // Invitation records in Usher's namespace.
  `list secrets -n ${USHER}`,
  `watch secrets -n ${USHER}`,
  `get secrets -n ${USHER}`,
  `create secrets -n ${USHER}`,
  `update secrets -n ${USHER}`,
  `delete secrets -n ${USHER}`,
  // Leader election: its own Lease only.
  `get leases.coordination.k8s.io/${LEASE} -n ${USHER}`,
  `update leases.coordination.k8s.io/${LEASE} -n ${USHER}`,
  `patch leases.coordination.k8s.io/${LEASE} -n ${USHER}`,
  `create leases.coordination.k8s.io -n ${USHER}`,
];
/** The link Secrets beside invitations: the controller's with linkDisclosure=Secret only. */
const LINK_SECRET_CALLS = ['list secrets -A', 'watch secrets -A', `get secrets -n ${TENANT}`, `create secrets -n ${TENANT}`, `update secrets -n ${TENANT}`];
const ACCEPT_CALLS = [
  // Invitations from a watch cache, and one by name.
  'list userinvitations.usher.dev -A',
  'watch userinvitations.usher.dev -A',
  `get userinvitations.usher.dev -n ${TENANT}`,
  // The invitation's namespace and its tenant label.
  'list namespaces',
  'watch namespaces',
  'get namespaces',
  // The User: created or given the membership, and removed again when the invitation was revoked mid-accept.
  'list users.usher.dev',
  'watch users.usher.dev',
  'get users.usher.dev',
  'create users.usher.dev',
  'update users.usher.dev',
  'delete users.usher.dev',
  // Records (watch cache, claimed and marked used by PUT) and password hashes (create, compare-and-swap replace).
  `list secrets -n ${USHER}`,
  `watch secrets -n ${USHER}`,
  `get secrets -n ${USHER}`,
  `create secrets -n ${USHER}`,
  `update secrets -n ${USHER}`,
];
/** Neither identity may do these. */
const NEITHER = [
  `get configmaps -n ${USHER}`,
  `get configmaps -n ${TENANT}`,
  'list configmaps -A',
  'create namespaces',
  'update namespaces',
  'patch namespaces',
  'delete namespaces',
  `create userinvitations.usher.dev -n ${TENANT}`,
  `patch userinvitations.usher.dev -n ${TENANT}`,
  `delete userinvitations.usher.dev -n ${TENANT}`,
  `patch userinvitations.usher.dev --subresource=status -n ${TENANT}`,
  'patch users.usher.dev',
  'update users.usher.dev --subresource=status',
  'deletecollection users.usher.dev',
  `patch secrets -n ${USHER}`,
  `deletecollection secrets -n ${USHER}`,
  `delete secrets -n ${TENANT}`,
  `patch secrets -n ${TENANT}`,
  'delete secrets -A',
  `create events -n ${TENANT}`,
  `delete events.events.k8s.io -n ${TENANT}`,
  `get leases.coordination.k8s.io/kube-scheduler -n ${USHER}`,
  `update leases.coordination.k8s.io/other -n ${USHER}`,
  `delete leases.coordination.k8s.io/${LEASE} -n ${USHER}`,
  `create leases.coordination.k8s.io -n ${TENANT}`,
  `create pods -n ${USHER}`,
  `create serviceaccounts --subresource=token -n ${USHER}`,
  `create rolebindings.rbac.authorization.k8s.io -n ${USHER}`,
  'create clusterrolebindings.rbac.authorization.k8s.io',
  'escalate clusterroles.rbac.authorization.k8s.io',
  'bind clusterroles.rbac.authorization.k8s.io',
  'impersonate users',
  'update customresourcedefinitions.apiextensions.k8s.io',
  'delete validatingadmissionpolicies.admissionregistration.k8s.io',
];
/** The controller's calls that the page does not make: no status, no Events, no Lease, no deleting records. */
const NOT_THE_PAGES = CONTROLLER_CALLS.filter((call) => !ACCEPT_CALLS.includes(call));

beforeAll(async () => {
  await kubectlOk(['create', 'namespace', USHER]);
  await kubectlOk(['create', 'namespace', TENANT]);
});

afterAll(async () => {
  await kubectl(['delete', 'clusterrole,clusterrolebinding', '-l', `app.kubernetes.io/instance=${RELEASE}`]);
  await deleteNamespaces(USHER, TENANT);
});

describe('with linkDisclosure=Status (the default)', () => {
  beforeAll(async () => {
    await applyRbac('Status');
    await settle(CONTROLLER, CONTROLLER_CALLS, true);
    await settle(ACCEPT, ACCEPT_CALLS, true);
  });

  it('the controller’s ServiceAccount can make each of its calls', async () => {
    expect(await wrong(CONTROLLER, CONTROLLER_CALLS, true)).toEqual([]);
  });

  it('the controller’s ServiceAccount cannot read or write Secrets outside Usher’s namespace, or anything else', async () => {
    expect(await wrong(CONTROLLER, [...LINK_SECRET_CALLS, ...NEITHER], false)).toEqual([]);
  });

  it('the acceptance page’s ServiceAccount can make each of its calls', async () => {
    expect(await wrong(ACCEPT, ACCEPT_CALLS, true)).toEqual([]);
  });

  it('the acceptance page’s ServiceAccount cannot touch Secrets outside Usher’s namespace, delete records, write status, record Events or take a Lease', async () => {
    expect(await wrong(ACCEPT, [...LINK_SECRET_CALLS, ...NOT_THE_PAGES, ...NEITHER], false)).toEqual([]);
  });

  it('each holds exactly its rules, in Usher’s namespace and in a tenant’s (kubectl auth can-i --list)', async () => {
    expect(await rulesHeld(CONTROLLER, USHER)).toEqual(expand([...CONTROLLER_CLUSTER, ...CONTROLLER_IN_USHER]));
    expect(await rulesHeld(CONTROLLER, TENANT)).toEqual(expand(CONTROLLER_CLUSTER));
    expect(await rulesHeld(ACCEPT, USHER)).toEqual(expand([...ACCEPT_CLUSTER, ...ACCEPT_IN_USHER]));
    expect(await rulesHeld(ACCEPT, TENANT)).toEqual(expand(ACCEPT_CLUSTER));
  });
});

describe('with linkDisclosure=Secret', () => {
  beforeAll(async () => {
    await applyRbac('Secret');
    await settle(CONTROLLER, LINK_SECRET_CALLS, true);
  });

  it('the controller’s ServiceAccount can also read and write the link Secrets beside invitations, in any namespace', async () => {
    expect(await wrong(CONTROLLER, [...CONTROLLER_CALLS, ...LINK_SECRET_CALLS], true)).toEqual([]);
  });

  it('the controller’s ServiceAccount still cannot delete them (the garbage collector does), or anything else', async () => {
    expect(await wrong(CONTROLLER, NEITHER, false)).toEqual([]);
  });

  it('the acceptance page’s ServiceAccount is unchanged: its calls, and no Secrets outside Usher’s namespace', async () => {
    expect(await wrong(ACCEPT, ACCEPT_CALLS, true)).toEqual([]);
    expect(await wrong(ACCEPT, [...LINK_SECRET_CALLS, ...NOT_THE_PAGES, ...NEITHER], false)).toEqual([]);
  });

  it('each holds exactly its rules, in Usher’s namespace and in a tenant’s (kubectl auth can-i --list)', async () => {
    expect(await rulesHeld(CONTROLLER, USHER)).toEqual(expand([...CONTROLLER_CLUSTER, ...CONTROLLER_LINK_SECRETS, ...CONTROLLER_IN_USHER]));
    expect(await rulesHeld(CONTROLLER, TENANT)).toEqual(expand([...CONTROLLER_CLUSTER, ...CONTROLLER_LINK_SECRETS]));
    expect(await rulesHeld(ACCEPT, USHER)).toEqual(expand([...ACCEPT_CLUSTER, ...ACCEPT_IN_USHER]));
    expect(await rulesHeld(ACCEPT, TENANT)).toEqual(expand(ACCEPT_CLUSTER));
  });
});

describe('with config.rbac (memberships projected into RBAC)', () => {
  const RBAC_VALUES = { enabled: true, roleMap: { developer: 'edit', viewer: 'view' }, groupMap: { developers: 'view' } };
  const RB = 'rolebindings.rbac.authorization.k8s.io';
  const CRB = 'clusterrolebindings.rbac.authorization.k8s.io';
  const CR = 'clusterroles.rbac.authorization.k8s.io';
  const WRITE = ['create', 'update', 'delete'];
  /** The controller's calls for the projection: its bindings anywhere, and bind on the mapped ClusterRoles. */
  const BINDING_CALLS = [
    ...['list', 'watch'].flatMap((verb) => [`${verb} ${RB} -A`, `${verb} ${CRB}`]),
    ...WRITE.flatMap((verb) => [`${verb} ${RB} -n ${TENANT}`, `${verb} ${RB} -n ${USHER}`, `${verb} ${CRB}`]),
    `bind ${CR}/edit -n ${TENANT}`,
    `bind ${CR}/view -n ${TENANT}`,
    `bind ${CR}/edit`,
    `bind ${CR}/view`,
  ];
  /** Any other ClusterRole, bind without a name, escalate, and writing roles: never. */
  const NEVER = [
    `bind ${CR}/cluster-admin`,
    `bind ${CR}/admin`,
    `bind ${CR}/admin -n ${TENANT}`,
    `bind ${CR}/cluster-admin -n ${TENANT}`,
    `bind ${CR}/${RELEASE}-usher`,
    `bind ${CR}`,
    `bind roles.rbac.authorization.k8s.io/edit -n ${TENANT}`,
    `escalate ${CR}`,
    `escalate ${CR}/edit`,
    `escalate roles.rbac.authorization.k8s.io -n ${TENANT}`,
    `create ${CR}`,
    `update ${CR}/edit`,
    `create roles.rbac.authorization.k8s.io -n ${TENANT}`,
    `deletecollection ${RB} -n ${TENANT}`,
    `deletecollection ${CRB}`,
    // Not used by the controller (it reads its bindings from its watch, and replaces rather than patches).
    `patch ${RB} -n ${TENANT}`,
    `patch ${CRB}`,
  ];
  /** What the controller may still not do: NEITHER, but for the bindings it now writes. */
  const STILL_NOT = NEITHER.filter((check) => !check.includes('rolebindings') && check !== 'update users.usher.dev --subresource=status');
  const CONTROLLER_RBAC = [
    // The User's Bound condition.
    'usher.dev/users/status update',
    'rbac.authorization.k8s.io/rolebindings list watch create update delete',
    'rbac.authorization.k8s.io/clusterrolebindings list watch create update delete',
    'rbac.authorization.k8s.io/clusterroles:edit bind',
    'rbac.authorization.k8s.io/clusterroles:view bind',
  ];
  const SA_GROUPS = ['system:serviceaccounts', `system:serviceaccounts:${USHER}`];
  /** kubectl as the controller's ServiceAccount (impersonated by admin, with a ServiceAccount's groups). */
  const asController = (args: string[], input?: string) =>
    kubectl([`--as=${CONTROLLER}`, ...SA_GROUPS.map((g) => `--as-group=${g}`), ...args], input === undefined ? {} : { input });
  const binding = (kind: 'RoleBinding' | 'ClusterRoleBinding', name: string, role: string): string =>
    JSON.stringify({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind,
      // The release's label: afterAll deletes what is cluster-scoped by it.
      metadata: { name, ...(kind === 'RoleBinding' ? { namespace: TENANT } : {}), labels: { 'app.kubernetes.io/instance': RELEASE } },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `oidc:jane-${suffix}@example.com` }],
    });

  /** How many rules a ClusterRole holds. */
  const ruleCount = async (clusterRole: string): Promise<number> =>
    ((JSON.parse(await kubectlOk(['get', 'clusterrole', clusterRole, '-o', 'json'])) as { rules?: unknown[] }).rules ?? []).length;

  beforeAll(async () => {
    // Binding an empty ClusterRole escalates nothing, so the API server allows it to anyone: these must hold their rules.
    for (let i = 0; (await Promise.all(['admin', 'edit', 'view'].map(ruleCount))).includes(0); i++) {
      if (i >= 120) throw new Error('admin, edit and view were not aggregated within 30 s (the harness runs the ClusterRole aggregation controller)');
      await new Promise((r) => setTimeout(r, 250));
    }
    await applyRbac('Status', ['--set-json', `config.rbac=${JSON.stringify(RBAC_VALUES)}`]);
    await settle(CONTROLLER, BINDING_CALLS, true);
  }, 120_000);

  it('the controller’s ServiceAccount can make each of its calls, and write bindings in any namespace', async () => {
    expect(await wrong(CONTROLLER, [...CONTROLLER_CALLS, ...BINDING_CALLS], true)).toEqual([]);
  });

  it('the controller’s ServiceAccount can bind no other ClusterRole, escalate nothing, write no roles, and nothing else', async () => {
    expect(await wrong(CONTROLLER, [...NEVER, ...LINK_SECRET_CALLS, ...STILL_NOT], false)).toEqual([]);
  });

  it('the acceptance page’s ServiceAccount is unchanged: no bindings, no bind', async () => {
    expect(await wrong(ACCEPT, ACCEPT_CALLS, true)).toEqual([]);
    expect(await wrong(ACCEPT, [...BINDING_CALLS, ...NEVER, ...NOT_THE_PAGES, ...NEITHER], false)).toEqual([]);
  });

  it('each holds exactly its rules, in Usher’s namespace and in a tenant’s (kubectl auth can-i --list)', async () => {
    expect(await rulesHeld(CONTROLLER, USHER)).toEqual(expand([...CONTROLLER_CLUSTER, ...CONTROLLER_RBAC, ...CONTROLLER_IN_USHER]));
    expect(await rulesHeld(CONTROLLER, TENANT)).toEqual(expand([...CONTROLLER_CLUSTER, ...CONTROLLER_RBAC]));
    expect(await rulesHeld(ACCEPT, TENANT)).toEqual(expand(ACCEPT_CLUSTER));
  });

  it('real requests as the controller: a RoleBinding to a mapped ClusterRole is created, one to cluster-admin or admin refused (403)', async () => {
    const edit = await asController(['create', '-f', '-'], binding('RoleBinding', 'projected-edit', 'edit'));
    expect(edit.stderr).toBe('');
    expect(edit.code).toBe(0);
    for (const role of ['cluster-admin', 'admin']) {
      const refused = await asController(['create', '-f', '-'], binding('RoleBinding', `projected-${role}`, role));
      expect(refused.code, role).not.toBe(0);
      expect(refused.stderr, role).toContain('Error from server (Forbidden)');
      expect(refused.stderr, role).toContain('is attempting to grant RBAC permissions not currently held');
    }
    expect((await kubectlOk(['get', 'rolebindings', '-n', TENANT, '-o', 'name'])).trim().split('\n')).toEqual([
      'rolebinding.rbac.authorization.k8s.io/projected-edit',
    ]);
  });

  it('real requests as the controller: the same cluster-wide, and no existing binding to another ClusterRole can be given a subject (update is checked too)', async () => {
    const view = await asController(['create', '-f', '-'], binding('ClusterRoleBinding', `${RELEASE}-projected-view`, 'view'));
    expect(view.stderr).toBe('');
    expect(view.code).toBe(0);
    const admin = await asController(['create', '-f', '-'], binding('ClusterRoleBinding', `${RELEASE}-projected-cluster-admin`, 'cluster-admin'));
    expect(admin.code).not.toBe(0);
    expect(admin.stderr).toContain('Error from server (Forbidden)');
    // A binding to admin made by someone else: the controller may delete it, but not add anyone to it.
    await kubectlOk(['create', '-f', '-'], { input: binding('RoleBinding', 'someone-elses-admin', 'admin') });
    const existing = JSON.parse(await kubectlOk(['get', 'rolebinding', 'someone-elses-admin', '-n', TENANT, '-o', 'json'])) as { subjects: unknown[] };
    existing.subjects.push({ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' });
    // A PUT, as the controller writes (it may update bindings): refused by the escalation check, not for lack of the verb.
    const update = await asController(['replace', '-f', '-'], JSON.stringify(existing));
    expect(update.code).not.toBe(0);
    expect(update.stderr).toContain('Error from server (Forbidden)');
  });
});

describe.skipIf(!inject('localControlPlane'))(
  'the harness identities (the global setup binds the chart’s RBAC, linkDisclosure=Secret, in usher-system)',
  () => {
    /** `kubectl auth can-i` with the identity's own kubeconfig (its token): a SelfSubjectAccessReview. */
    async function can(as: 'operator' | 'accept', check: string): Promise<boolean> {
      const result = await kubectl(['auth', 'can-i', ...check.split(' ')], { as });
      return result.code === 0 && result.stdout.trim() === 'yes';
    }
    async function answers(as: 'operator' | 'accept', checks: string[]): Promise<Record<string, boolean>> {
      return Object.fromEntries(await Promise.all(checks.map(async (check) => [check, await can(as, check)] as const)));
    }

    it('accept (system:serviceaccount:usher-system:usher-accept) is the acceptance page’s ServiceAccount', async () => {
      expect(
        await answers('accept', [
          'get secrets -n usher-system',
          'update secrets -n usher-system',
          'delete users.usher.dev',
          `get userinvitations.usher.dev -n ${TENANT}`,
          `get secrets -n ${TENANT}`,
          'delete secrets -n usher-system',
          `update userinvitations.usher.dev --subresource=status -n ${TENANT}`,
          'create leases.coordination.k8s.io -n usher-system',
          `create events.events.k8s.io -n ${TENANT}`,
          'get configmaps -n usher-system',
        ]),
      ).toEqual({
        'get secrets -n usher-system': true,
        'update secrets -n usher-system': true,
        'delete users.usher.dev': true,
        [`get userinvitations.usher.dev -n ${TENANT}`]: true,
        [`get secrets -n ${TENANT}`]: false,
        'delete secrets -n usher-system': false,
        [`update userinvitations.usher.dev --subresource=status -n ${TENANT}`]: false,
        'create leases.coordination.k8s.io -n usher-system': false,
        [`create events.events.k8s.io -n ${TENANT}`]: false,
        'get configmaps -n usher-system': false,
      });
    });

    it('operator (system:serviceaccount:usher-system:usher) is the controller’s ServiceAccount, with the link-Secret rights', async () => {
      expect(
        await answers('operator', [
          `get secrets -n ${TENANT}`,
          `update secrets -n ${TENANT}`,
          'delete secrets -n usher-system',
          `update userinvitations.usher.dev --subresource=status -n ${TENANT}`,
          'update leases.coordination.k8s.io/usher-harness-leader -n usher-system',
          'create leases.coordination.k8s.io -n usher-system',
          'delete users.usher.dev',
          `delete secrets -n ${TENANT}`,
          'get configmaps -n usher-system',
        ]),
      ).toEqual({
        [`get secrets -n ${TENANT}`]: true,
        [`update secrets -n ${TENANT}`]: true,
        'delete secrets -n usher-system': true,
        [`update userinvitations.usher.dev --subresource=status -n ${TENANT}`]: true,
        'update leases.coordination.k8s.io/usher-harness-leader -n usher-system': true,
        'create leases.coordination.k8s.io -n usher-system': true,
        // A User left without memberships (config.access.deleteUserWithoutMemberships, the default).
        'delete users.usher.dev': true,
        [`delete secrets -n ${TENANT}`]: false,
        'get configmaps -n usher-system': false,
      });
    });

    it('real requests get the same: the page lists Usher’s Secrets, and is refused a tenant’s', async () => {
      const own = await kubectl(['get', 'secrets', '-n', 'usher-system', '-o', 'name'], { as: 'accept' });
      expect(own.stderr).toBe('');
      expect(own.code).toBe(0);
      const tenant = await kubectl(['get', 'secrets', '-n', TENANT, '-o', 'name'], { as: 'accept' });
      expect(tenant.code).not.toBe(0);
      expect(tenant.stderr).toContain(
        `User "system:serviceaccount:usher-system:usher-accept" cannot list resource "secrets" in API group "" in the namespace "${TENANT}"`,
      );
    });
  },
);
