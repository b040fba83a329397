// What enqueues what, without a control plane: real informers over a fake
// watch, the watches of the UserInvitation controller on them, and the keys
// each event enqueues.
import { KubeConfig, type V1Namespace, type V1Secret } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Membership, User, UserInvitation } from '../../src/api/types.ts';
import { accountRelevantChange, invitationsOfUser, labelsChanged, setUpWatches, type WatchedInformers } from '../../src/controller/watches.ts';
import { secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';
import { Informer, type ListResult, type ObjectLike, type WatchLike } from '../../src/runtime/informer.ts';

/** One watch per informer path; `emit(path, type, obj)` delivers an event to it. */
class FakeWatch implements WatchLike {
  readonly #callbacks = new Map<string, (phase: string, obj: unknown) => void>();

  watch(path: string, _params: unknown, callback: (phase: string, obj: unknown) => void): Promise<AbortController> {
    this.#callbacks.set(path, callback);
    return Promise.resolve(new AbortController());
  }

  emit(path: string, type: string, obj: unknown): void {
    const callback = this.#callbacks.get(path);
    if (!callback) throw new Error(`no watch on ${path}`);
    callback(type, structuredClone(obj));
  }
}

const PATHS = { invitations: '/invitations', secrets: '/records', linkSecrets: '/links', namespaces: '/namespaces', users: '/users' } as const;

let rv = 100;
const version = (): string => String(++rv);

/** A copy at a new resourceVersion, changed by `change`. */
function bumped<T extends { metadata?: { resourceVersion?: string } }>(obj: T, change: (copy: T) => void = () => undefined): T {
  const copy = structuredClone(obj);
  change(copy);
  copy.metadata = Object.assign(copy.metadata ?? {}, { resourceVersion: version() });
  return copy;
}

const invitation = (namespace: string, name: string): UserInvitation => ({
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'UserInvitation',
  metadata: { name, namespace, uid: `uid-${namespace}-${name}`, resourceVersion: version() },
  spec: { email: `${name}@example.com`, tenant: 'acme' },
});

const membership = (namespace: string, name: string): Membership => ({
  scope: 'Tenant',
  tenant: 'acme',
  invitation: { namespace, name, uid: `uid-${namespace}-${name}` },
});

const user = (name: string, ...memberships: Membership[]): User => ({
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'User',
  metadata: { name, resourceVersion: version() },
  spec: { email: `${name}@example.com`, memberships },
});

const recordSecret = (invitationNamespace: string, invitationName: string): V1Secret => {
  const record: InvitationRecord = {
    name: `rec-${invitationName}`,
    namespace: 'usher-system',
    invitationNamespace,
    invitationName,
    invitationUid: `uid-${invitationNamespace}-${invitationName}`,
    selector: 'a'.repeat(32),
    verifierHash: 'b'.repeat(64),
    email: 'jane@example.com',
    issuance: 1,
    issuedAt: '2026-01-01T00:00:00Z',
    expiresAt: '2026-01-08T00:00:00Z',
  };
  return bumped(secretFromRecord(record) as V1Secret);
};

const linkSecret = (namespace: string, owner: string): V1Secret => ({
  metadata: {
    name: `${owner}-invitation-link`,
    namespace,
    resourceVersion: version(),
    ownerReferences: [{ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', name: owner, uid: 'x' }],
  },
});

const namespace = (name: string, labels?: Record<string, string>): V1Namespace => ({
  metadata: { name, resourceVersion: version(), ...(labels ? { labels } : {}) },
});

interface Harness {
  watch: FakeWatch;
  enqueued: string[];
  deleted: string[];
  stop: () => void;
}

async function harness(initial: { invitations?: UserInvitation[]; users?: User[]; namespaces?: V1Namespace[] } = {}): Promise<Harness> {
  const watch = new FakeWatch();
  const informer = <T extends ObjectLike>(path: string, items: T[] = []): Informer<T> =>
    new Informer<T>({
      kubeConfig: new KubeConfig(),
      path,
      watch,
      list: () => Promise.resolve<ListResult<T>>({ items: structuredClone(items), metadata: { resourceVersion: '1' } }),
    });
  const informers: WatchedInformers = {
    invitations: informer(PATHS.invitations, initial.invitations),
    secrets: informer<V1Secret>(PATHS.secrets),
    linkSecrets: informer<V1Secret>(PATHS.linkSecrets),
    namespaces: informer(PATHS.namespaces, initial.namespaces),
    users: informer(PATHS.users, initial.users),
  };
  const enqueued: string[] = [];
  const deleted: string[] = [];
  setUpWatches(informers, {
    enqueue: (ns, name) => enqueued.push(`${ns}/${name}`),
    invitationDeleted: (uid) => deleted.push(uid),
  });
  const all = Object.values(informers) as Informer<ObjectLike>[];
  await Promise.all(all.map((i) => i.start()));
  await vi.advanceTimersByTimeAsync(0); // the watches start
  enqueued.length = 0;
  return {
    watch,
    enqueued,
    deleted,
    stop: () => {
      for (const i of all) i.stop();
    },
  };
}

describe('the UserInvitation controller’s watches', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('enqueues an invitation when it is added or changed; its deletion calls for the orphan-record cleanup', async () => {
    const h = await harness();
    const jane = invitation('acme', 'jane');
    h.watch.emit(PATHS.invitations, 'ADDED', jane);
    h.watch.emit(PATHS.invitations, 'MODIFIED', bumped(jane));
    expect(h.enqueued).toEqual(['acme/jane', 'acme/jane']);
    h.watch.emit(PATHS.invitations, 'DELETED', jane);
    expect(h.enqueued).toHaveLength(2);
    expect(h.deleted).toEqual(['uid-acme-jane']);
    h.stop();
  });

  it('enqueues the invitation a record is bound to on every record event, and nothing for a Secret that is no record', async () => {
    const h = await harness();
    const record = recordSecret('acme', 'jane');
    h.watch.emit(PATHS.secrets, 'ADDED', record);
    h.watch.emit(PATHS.secrets, 'MODIFIED', bumped(record));
    h.watch.emit(PATHS.secrets, 'DELETED', record);
    h.watch.emit(PATHS.secrets, 'ADDED', { metadata: { name: 'not-a-record', namespace: 'usher-system', resourceVersion: version() } });
    expect(h.enqueued).toEqual(['acme/jane', 'acme/jane', 'acme/jane']);
    h.stop();
  });

  it('enqueues the owner of a link Secret, in the Secret’s namespace', async () => {
    const h = await harness();
    h.watch.emit(PATHS.linkSecrets, 'ADDED', linkSecret('acme', 'jane'));
    h.watch.emit(PATHS.linkSecrets, 'DELETED', linkSecret('acme', 'jane'));
    h.watch.emit(PATHS.linkSecrets, 'ADDED', { metadata: { name: 'stray', namespace: 'acme', resourceVersion: version() } });
    expect(h.enqueued).toEqual(['acme/jane', 'acme/jane']);
    h.stop();
  });

  it('enqueues the invitations of a namespace when it appears or its labels change, not on other changes', async () => {
    const acme = namespace('acme', { 'usher.dev/tenant': 'acme' });
    const h = await harness({ invitations: [invitation('acme', 'jane'), invitation('acme', 'sam'), invitation('globex', 'bob')], namespaces: [acme] });
    h.watch.emit(
      PATHS.namespaces,
      'MODIFIED',
      bumped(acme, (ns) => {
        if (ns.metadata) ns.metadata.annotations = { a: 'b' };
      }),
    );
    expect(h.enqueued).toEqual([]);
    h.watch.emit(
      PATHS.namespaces,
      'MODIFIED',
      bumped(acme, (ns) => {
        if (ns.metadata) ns.metadata.labels = { 'usher.dev/tenant': 'globex' };
      }),
    );
    expect(h.enqueued.sort()).toEqual(['acme/jane', 'acme/sam']);
    h.enqueued.length = 0;
    h.watch.emit(PATHS.namespaces, 'ADDED', namespace('globex'));
    expect(h.enqueued).toEqual(['globex/bob']);
    h.stop();
  });

  it('enqueues every invitation a User has a membership from when the User is deleted, changed or created', async () => {
    const sam = user('sam', membership('acme', 'sam-sso'), membership('acme', 'sam-sso-again'));
    const h = await harness({ users: [sam] });
    h.watch.emit(PATHS.users, 'DELETED', sam);
    expect(h.enqueued).toEqual(['acme/sam-sso', 'acme/sam-sso-again']);
    h.enqueued.length = 0;
    // A membership removed counts as much as one added.
    h.watch.emit(PATHS.users, 'ADDED', sam);
    h.enqueued.length = 0;
    h.watch.emit(PATHS.users, 'MODIFIED', user('sam', membership('globex', 'sam')));
    expect(h.enqueued.sort()).toEqual(['acme/sam-sso', 'acme/sam-sso-again', 'globex/sam']);
    h.enqueued.length = 0;
    h.watch.emit(PATHS.users, 'ADDED', user('admin'));
    expect(h.enqueued).toEqual([]);
    h.stop();
  });
});

describe('invitationsOfUser', () => {
  it('names each invitation once, from the new and the old version, skipping memberships without one', () => {
    const old = user('u', membership('a', 'x'), membership('b', 'y'));
    const changed = user('u', membership('a', 'x'), { scope: 'Instance' });
    expect(invitationsOfUser(changed, old)).toEqual([
      { namespace: 'a', name: 'x' },
      { namespace: 'b', name: 'y' },
    ]);
    expect(invitationsOfUser(changed)).toEqual([{ namespace: 'a', name: 'x' }]);
  });
});

describe('labelsChanged', () => {
  it('compares the labels by content, whatever their order', () => {
    const ns = (labels?: Record<string, string>): V1Namespace => ({ metadata: { name: 'n', ...(labels ? { labels } : {}) } });
    expect(labelsChanged(ns({ a: '1', b: '2' }), ns({ b: '2', a: '1' }))).toBe(false);
    expect(labelsChanged(ns(), ns({}))).toBe(false);
    expect(labelsChanged(ns({ a: '1' }), ns({ a: '2' }))).toBe(true);
    expect(labelsChanged(ns({ a: '1' }), ns())).toBe(true);
    expect(labelsChanged(ns(), ns({ a: '1' }))).toBe(true);
    expect(labelsChanged(ns({ a: '1' }), ns({ b: '1' }))).toBe(true);
  });
});

describe('accountRelevantChange: which User updates the identity controller looks at', () => {
  const base: User = {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'User',
    metadata: { name: 'jane', uid: 'u1', generation: 1, resourceVersion: '1' },
    spec: { email: 'jane@example.com', memberships: [{ scope: 'Tenant', tenant: 'acme' }] },
  };
  it.each<[string, User, boolean]>([
    [
      'its own status write (only status and resourceVersion move)',
      { ...base, metadata: { ...base.metadata, resourceVersion: '2' }, status: { conditions: [] } },
      false,
    ],
    ['a relist copy', { ...base }, false],
    ['a membership edited', { ...base, metadata: { ...base.metadata, generation: 2 }, spec: { ...base.spec, memberships: [] } }, true],
    ['a deletion under way', { ...base, metadata: { ...base.metadata, deletionTimestamp: '2026-12-01T00:00:00Z' } }, true],
    ['a finalizer added', { ...base, metadata: { ...base.metadata, finalizers: ['usher.dev/identity-account'] } }, true],
    ['the acceptance marks dropped', { ...base, metadata: { ...base.metadata, annotations: {} } }, true],
  ])('%s → %s', (_what, next, expected) => {
    expect(accountRelevantChange(next, base)).toBe(expected);
  });
});
