// The acceptance page's lean caches: what a GET reads survives the transform,
// the rest (the link, the conditions, the Secret around a record) does not.
import type { V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { pageInvitation, pageNamespace, pageRecord } from '../../src/accept/store.ts';
import { REISSUE_ANNOTATION, type UserInvitation } from '../../src/api/types.ts';
import { linkState, pendingReissue } from '../../src/invitation/link-state.ts';
import { recordFromSecret, secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';
import { parseConfig } from '../../src/config/load.ts';

const config = parseConfig('usher:\n  baseUrl: https://usher.test\n', { source: 'test', env: {} });

const invitation: UserInvitation = {
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'UserInvitation',
  metadata: {
    name: 'alice',
    namespace: 'team-a',
    uid: 'uid-1',
    resourceVersion: '12',
    generation: 3,
    creationTimestamp: '2026-12-01T10:00:00Z',
    labels: { team: 'a' },
    annotations: { [REISSUE_ANNOTATION]: '2026-12-01T11:00:00Z', 'kubectl.kubernetes.io/last-applied-configuration': '{"big":"json"}' },
    finalizers: ['usher.dev/membership'],
  },
  spec: { email: 'alice@example.com', tenant: 'acme', groups: ['devs'], roles: [{ name: 'developer', namespaces: ['acme.web'] }] },
  status: {
    phase: 'Sent',
    issuance: 2,
    lastHandledReissueAt: '2026-12-01T11:00:00Z',
    link: 'https://usher.test/accept/secret.token',
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-12-01T10:00:00Z', reason: 'Sent', message: 'Mailed.' }],
  },
};

const record: InvitationRecord = {
  name: 'inv-uid-1-2',
  namespace: 'usher-system',
  resourceVersion: '5',
  invitationNamespace: 'team-a',
  invitationName: 'alice',
  invitationUid: 'uid-1',
  selector: 'sel',
  verifierHash: 'hash',
  email: 'alice@example.com',
  issuance: 2,
  issuedAt: '2026-12-01T11:00:00Z',
  expiresAt: '2099-12-08T11:00:00Z',
};

describe('pageInvitation', () => {
  it('keeps what a GET reads, so the link state is the same as from the whole invitation', () => {
    const lean = pageInvitation(structuredClone(invitation));
    const world = { record, namespaceTenant: 'acme', config, now: new Date('2026-12-02T00:00:00Z') };
    expect(linkState({ ...world, invitation: lean })).toBe(linkState({ ...world, invitation }));
    expect(linkState({ ...world, invitation: lean })).toBe('open');
    expect(lean.spec).toEqual(invitation.spec);
    expect(pendingReissue(lean)).toBe(pendingReissue(invitation));
    // A reissue request not handled yet revokes the link, from the lean copy too.
    const requested = { ...invitation, metadata: { ...invitation.metadata, annotations: { [REISSUE_ANNOTATION]: '2026-12-01T12:00:00Z' } } };
    expect(linkState({ ...world, invitation: pageInvitation(requested) })).toBe('revoked');
    // Being deleted revokes it as well.
    const deleting = { ...invitation, metadata: { ...invitation.metadata, deletionTimestamp: '2026-12-01T13:00:00Z' } };
    expect(linkState({ ...world, invitation: pageInvitation(deleting) })).toBe('revoked');
  });

  it('drops the link, the conditions and the other annotations', () => {
    const lean = pageInvitation(invitation);
    expect(lean.status).toEqual({ issuance: 2, lastHandledReissueAt: '2026-12-01T11:00:00Z' });
    expect(lean.metadata).toEqual({
      name: 'alice',
      namespace: 'team-a',
      uid: 'uid-1',
      resourceVersion: '12',
      annotations: { [REISSUE_ANNOTATION]: '2026-12-01T11:00:00Z' },
    });
    expect(JSON.stringify(lean)).not.toContain('secret.token');
    expect(pageInvitation({ ...invitation, status: undefined }).status).toBeUndefined();
  });
});

describe('pageRecord', () => {
  it('decodes the record once and keeps the selector label the index files it under', () => {
    const plain = secretFromRecord(record);
    const secret: V1Secret = { ...plain, metadata: { ...plain.metadata, uid: 's-uid', annotations: { a: 'b' } } };
    const cached = pageRecord(secret);
    expect(cached.record).toEqual(recordFromSecret(secret));
    expect(cached.selectorLabel).toBe('sel');
    expect(cached.metadata).toEqual({ name: 'inv-uid-1-2', namespace: 'usher-system', resourceVersion: '5' });
  });

  it('has no record for a Secret that holds none', () => {
    expect(pageRecord({ type: 'Opaque', metadata: { name: 'x', namespace: 'usher-system', resourceVersion: '1' } }).record).toBeUndefined();
  });
});

describe('pageNamespace', () => {
  it('keeps the labels only', () => {
    expect(pageNamespace({ metadata: { name: 'team-a', uid: 'u', resourceVersion: '2', labels: { t: 'acme' }, annotations: { a: 'b' } } })).toEqual({
      metadata: { name: 'team-a', resourceVersion: '2', labels: { t: 'acme' } },
    });
  });
});
