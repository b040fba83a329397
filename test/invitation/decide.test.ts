// Table-driven tests of the reconciler's pure decision.
import { describe, expect, it } from 'vitest';
import { REISSUE_ANNOTATION, type User, type UserInvitation, type UserInvitationSpec, type UserInvitationStatus } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { UsherConfig } from '../../src/config/types.ts';
import { decide, type Action, type Observed } from '../../src/invitation/decide.ts';
import { verifiedLink } from '../../src/controller/reconciler.ts';
import { hashVerifier } from '../../src/invitation/token.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';

const NOW = new Date('2026-11-25T12:00:00Z');
const DAY = 86_400_000;
const SELECTOR = 'a'.repeat(32);
const LINK = `https://usher.example/accept/${SELECTOR}.${'v'.repeat(43)}`;

const config: UsherConfig = parseConfig('usher:\n  baseUrl: https://usher.example\n  tenancy:\n    instanceNamespaces: [usher-system]\n', {
  source: 'test',
  env: {},
});
const withMail: UsherConfig = {
  ...config,
  mail: { host: 'smtp', port: 25, tls: 'none', allowSelfSigned: false, from: 'x@example.com', pool: { maxConnections: 1 }, rateLimitPerSecond: 0 },
};

function invitation(spec: Partial<UserInvitationSpec> = {}, status?: UserInvitationStatus, annotations?: Record<string, string>): UserInvitation {
  return {
    apiVersion: 'usher.dev/v1alpha1',
    kind: 'UserInvitation',
    metadata: { name: 'jane', namespace: 'acme-ns', uid: 'uid-1', generation: 2, ...(annotations ? { annotations } : {}) },
    spec: { email: 'Jane.Doe@Example.com', scope: 'Tenant', tenant: 'acme', groups: ['devs'], ...spec },
    ...(status ? { status } : {}),
  };
}

function record(overrides: Partial<InvitationRecord> = {}): InvitationRecord {
  return {
    name: 'usher-invitation-uid-1-1',
    namespace: 'usher-system',
    invitationNamespace: 'acme-ns',
    invitationName: 'jane',
    invitationUid: 'uid-1',
    selector: SELECTOR,
    verifierHash: 'h',
    email: 'jane.doe@example.com',
    issuance: 1,
    issuedAt: '2026-11-24T12:00:00Z',
    expiresAt: '2026-12-01T12:00:00Z',
    ...overrides,
  };
}

function observe(o: Partial<Observed>): Observed {
  return { invitation: invitation(), records: [], link: undefined, namespaceTenant: 'acme', user: undefined, config, now: NOW, ...o };
}

const kinds = (actions: Action[]): string[] => actions.map((a) => a.kind);
const ready = (status: UserInvitationStatus) => status.conditions?.find((c) => c.type === 'Ready');
const stalled = (status: UserInvitationStatus) => status.conditions?.find((c) => c.type === 'Stalled');

describe('decide', () => {
  it.each<[string, Partial<Observed>, { phase?: string; actions: string[]; reason: string; message?: RegExp; requeue?: number }]>([
    ['a new invitation gets a token', {}, { phase: 'Pending', actions: ['issue'], reason: 'Issuing' }],
    [
      'an issued invitation without mail waits for manual sharing until expiry',
      { records: [record()], link: LINK },
      { phase: 'Pending', actions: [], reason: 'LinkReady', message: /share the link in status.link/, requeue: 6 * DAY },
    ],
    [
      'with mail configured, an unsent token is mailed',
      { config: withMail, records: [record()], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a mailed token is Sent',
      { config: withMail, records: [record({ mail: { attempts: 1, sentAt: '2026-11-24T12:00:01Z' } })], link: LINK },
      { phase: 'Sent', actions: [], reason: 'Sent', requeue: 6 * DAY },
    ],
    [
      'a transient mail failure waits for its retry',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T12:00:30Z' } })], link: LINK },
      { phase: 'Pending', actions: [], reason: 'MailRetrying', requeue: 30_000 },
    ],
    [
      'a due retry sends again',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T11:59:00Z' } })], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a permanent mail refusal fails',
      { config: withMail, records: [record({ mail: { attempts: 1, failedPermanently: true, lastError: '550 no such user' } })], link: LINK },
      { phase: 'Failed', actions: [], reason: 'MailRejected', message: /550 no such user/ },
    ],
    [
      'a crash mid-send (attempt started, not recorded) sends again',
      { config: withMail, records: [record({ mail: { attempts: 1, attemptStartedAt: '2026-11-25T11:59:59Z' } })], link: LINK },
      { phase: 'Pending', actions: ['sendMail'], reason: 'Sending' },
    ],
    [
      'a past expiry is Expired and stalls with the reissue command',
      { records: [record({ expiresAt: '2026-11-25T11:59:59Z' })], link: LINK },
      {
        phase: 'Expired',
        actions: [],
        reason: 'Expired',
        message: /kubectl annotate userinvitation jane -n acme-ns --overwrite usher.dev\/reissue-requested-at=/,
      },
    ],
    [
      'a used record is Accepted',
      { records: [record({ usedAt: '2026-11-25T10:00:00Z', user: 'jane-doe-1' })], link: LINK },
      { phase: 'Accepted', actions: [], reason: 'Accepted' },
    ],
    [
      'a record without its link (crash before status) is replaced',
      { records: [record()], link: undefined },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'a changed email needs a new token',
      { invitation: invitation({ email: 'other@example.com' }), records: [record()], link: LINK },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'an unlabelled namespace may not invite',
      { namespaceTenant: undefined },
      { phase: 'Failed', actions: [], reason: 'Forbidden', message: /has no usher.dev\/tenant label/ },
    ],
    [
      'another tenant is forbidden and the live link revoked',
      { namespaceTenant: 'globex', records: [record()], link: LINK },
      { phase: 'Failed', actions: ['deleteRecord'], reason: 'Forbidden', message: /belongs to tenant globex/ },
    ],
    [
      'instance scope from an ordinary namespace is forbidden',
      { invitation: invitation({ scope: 'Instance', tenant: undefined }) },
      { phase: 'Failed', actions: [], reason: 'Forbidden', message: /usher.tenancy.instanceNamespaces/ },
    ],
    [
      'no group or role is invalid',
      { invitation: invitation({ groups: [] }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.groups, spec.roles/ },
    ],
    [
      'expireAfter beyond the maximum is invalid',
      { invitation: invitation({ expireAfter: 'P400D' }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.expireAfter: P400D is longer than the maximum P90D/ },
    ],
    ['direct creation makes a User', { invitation: invitation({ createUserDirectly: true }) }, { actions: ['ensureUser'], reason: 'CreatingUser' }],
    [
      'a link that no longer verifies (a rewritten link Secret) is never mailed: a new token replaces it',
      { config: withMail, invitation: invitation({}, { issuance: 1 }), records: [record()], link: undefined },
      { phase: 'Pending', actions: ['deleteRecord', 'issue'], reason: 'Reissuing' },
    ],
    [
      'a link lost after its mail went out changes nothing',
      {
        config: withMail,
        invitation: invitation({}, { issuance: 1 }),
        records: [record({ mail: { attempts: 1, sentAt: '2026-11-24T12:00:01Z' } })],
        link: undefined,
      },
      { phase: 'Sent', actions: [], reason: 'Sent', requeue: 6 * DAY },
    ],
    [
      'an address not in Unicode NFC (the Kelvin sign) is invalid',
      { invitation: invitation({ email: '\u212Aim@example.com' }) },
      { phase: 'Failed', actions: [], reason: 'InvalidSpec', message: /spec.email: .* is not in Unicode normal form C/ },
    ],
  ])('%s', (_name, observed, want) => {
    const plan = decide(observe(observed));
    expect(kinds(plan.actions)).toEqual(want.actions);
    if (want.phase) expect(plan.status.phase).toBe(want.phase);
    const condition =
      plan.status.phase === 'Failed' || plan.status.phase === 'Expired' ? stalled(plan.status) : plan.status.conditions?.find((c) => c.status === 'True');
    expect(condition?.reason).toBe(want.reason);
    if (want.message) expect(condition?.message).toMatch(want.message);
    if (want.requeue !== undefined) expect(plan.requeueAfterMs).toBe(want.requeue);
    expect(plan.status.observedGeneration).toBe(2);
  });

  it.each<[string, Partial<Observed>, string, string]>([
    ['no mail server', { records: [record()], link: LINK }, 'False', 'NoMailServer'],
    ['sending', { config: withMail, records: [record()], link: LINK }, 'Unknown', 'Sending'],
    ['sent', { config: withMail, records: [record({ mail: { attempts: 2, sentAt: '2026-11-25T11:00:00Z' } })], link: LINK }, 'True', 'Sent'],
    [
      'retrying',
      { config: withMail, records: [record({ mail: { attempts: 1, lastError: '421 busy', nextAttemptAt: '2026-11-25T12:01:00Z' } })], link: LINK },
      'False',
      'MailRetrying',
    ],
    [
      'rejected',
      { config: withMail, records: [record({ mail: { attempts: 1, failedPermanently: true, lastError: '550 no' } })], link: LINK },
      'False',
      'MailRejected',
    ],
  ])('reports MailDelivered when %s', (_name, observed, status, reason) => {
    const condition = decide(observe(observed)).status.conditions?.find((c) => c.type === 'MailDelivered');
    expect(condition).toMatchObject({ status, reason });
  });

  it('issues with the default lifetime, or the invitation own expireAfter', () => {
    const byDefault = decide(observe({})).actions[0];
    expect(byDefault).toMatchObject({
      kind: 'issue',
      issuance: 1,
      issuedAt: '2026-11-25T12:00:00Z',
      expiresAt: '2026-12-02T12:00:00Z',
      email: 'jane.doe@example.com',
      reason: 'Issued',
    });
    const custom = decide(observe({ invitation: invitation({ expireAfter: 'P30D' }) })).actions[0];
    expect(custom).toMatchObject({ kind: 'issue', expiresAt: '2026-12-25T12:00:00Z' });
  });

  it('reissues once per new annotation value, with the next issuance number', () => {
    const requested = invitation({}, { issuance: 1, lastHandledReissueAt: 'first' }, { [REISSUE_ANNOTATION]: 'second' });
    const plan = decide(observe({ invitation: requested, records: [record()], link: LINK }));
    expect(kinds(plan.actions)).toEqual(['deleteRecord', 'issue']);
    expect(plan.actions[1]).toMatchObject({ issuance: 2, reason: 'Reissued' });
    expect(plan.status.lastHandledReissueAt).toBe('second');

    const handled = invitation({}, { issuance: 2, lastHandledReissueAt: 'second' }, { [REISSUE_ANNOTATION]: 'second' });
    const settled = decide(observe({ invitation: handled, records: [record({ issuance: 2 })], link: LINK }));
    expect(settled.actions).toEqual([]);
  });

  it('reissues an expired invitation when asked, and otherwise leaves it expired', () => {
    const expired = record({ expiresAt: '2026-11-20T00:00:00Z' });
    const asked = invitation({}, { phase: 'Expired', issuance: 1 }, { [REISSUE_ANNOTATION]: '2026-11-25T12:00:00Z' });
    expect(kinds(decide(observe({ invitation: asked, records: [expired], link: LINK })).actions)).toEqual(['deleteRecord', 'issue']);
    const notAsked = invitation({}, { phase: 'Expired', issuance: 1 });
    expect(decide(observe({ invitation: notAsked, records: [expired], link: LINK })).status.phase).toBe('Expired');
  });

  it('is idempotent: deciding again on its own status changes nothing', () => {
    const first = decide(observe({ records: [record()], link: LINK }));
    const again = decide(observe({ invitation: invitation({}, first.status), records: [record()], link: LINK, now: new Date(NOW.getTime() + 60_000) }));
    expect(again.actions).toEqual([]);
    expect(again.status).toEqual(first.status);
  });

  it('keeps lastTransitionTime while a condition holds, and moves it on change', () => {
    const first = decide(observe({ records: [record()], link: LINK }));
    const later = new Date(NOW.getTime() + 7 * DAY);
    const expired = decide(observe({ invitation: invitation({}, first.status), records: [record()], link: LINK, now: later }));
    expect(ready(expired.status)?.status).toBe('False');
    expect(ready(expired.status)?.lastTransitionTime).toBe(later.toISOString().replace(/\.\d{3}Z$/, 'Z'));
    expect(expired.status.conditions?.find((c) => c.type === 'Reconciling')?.lastTransitionTime).toBe(
      first.status.conditions?.find((c) => c.type === 'Reconciling')?.lastTransitionTime,
    );
  });

  it('shows * as the tenant of an instance invitation, and discloses links in a Secret when configured', () => {
    const instance = invitation({ scope: 'Instance', tenant: undefined, roles: [{ name: 'admin' }], groups: [] });
    instance.metadata.namespace = 'usher-system';
    const secretMode = { ...config, invitations: { ...config.invitations, linkDisclosure: 'Secret' as const } };
    const plan = decide(observe({ invitation: instance, records: [record({ namespace: 'usher-system' })], link: LINK, config: secretMode }));
    expect(plan.status.tenant).toBe('*');
    expect(plan.status.link).toBeUndefined();
    expect(plan.status.linkSecretName).toBe('jane-invitation-link');
  });

  it('direct creation is done once the User has the membership', () => {
    const user: User = {
      apiVersion: 'usher.dev/v1alpha1',
      kind: 'User',
      metadata: { name: 'jane-doe-1' },
      spec: {
        email: 'jane.doe@example.com',
        memberships: [{ scope: 'Tenant', tenant: 'acme', invitation: { namespace: 'acme-ns', name: 'jane', uid: 'uid-1' } }],
      },
    };
    const plan = decide(observe({ invitation: invitation({ createUserDirectly: true }), user }));
    expect(plan.actions).toEqual([]);
    expect(plan.status).toMatchObject({ phase: 'UserCreated', user: 'jane-doe-1' });
  });
});

describe('verifiedLink', () => {
  const verifier = 'v'.repeat(43);
  const records = [record({ verifierHash: hashVerifier(verifier) })];

  it('gives back the link, rebuilt from baseUrl, when its token verifies against a record', () => {
    expect(verifiedLink(LINK, records, 'https://usher.example')).toBe(LINK);
  });

  it.each([
    ['another host with the real token', LINK.replace('https://usher.example', 'https://evil.example')],
    ['another path', LINK.replace('/accept/', '/accept/x/')],
    ['the real selector with another verifier', `https://usher.example/accept/${SELECTOR}.${'w'.repeat(43)}`],
    ['another selector', `https://usher.example/accept/${'b'.repeat(32)}.${verifier}`],
    ['something that is no link', 'javascript:alert(1)'],
  ])('refuses %s', (_what, link) => {
    expect(verifiedLink(link, records, 'https://usher.example')).toBeUndefined();
  });
});
