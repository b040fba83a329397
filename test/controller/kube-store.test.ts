// The controller's lean caches: each transform keeps what the reconcilers, the
// watches and the writes read, so that a write built from a cached object sends
// exactly what it would have sent from the whole object.
import type { V1Namespace, V1Secret } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { leanLinkSecret, leanNamespace, leanRecordSecret } from '../../src/controller/kube-store.ts';
import { invitationOfRecord, labelsChanged, ownerOfLinkSecret } from '../../src/controller/watches.ts';
import { INVITATION_UID_LABEL, isRecordSecret, recordFromSecret, secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';

const record: InvitationRecord = {
  name: 'inv-uid-1-1',
  namespace: 'usher-system',
  resourceVersion: '41',
  invitationNamespace: 'team-a',
  invitationName: 'alice',
  invitationUid: 'uid-1',
  selector: 'sel123',
  verifierHash: 'hash456',
  email: 'alice@example.com',
  issuance: 1,
  issuedAt: '2026-12-01T10:00:00Z',
  expiresAt: '2026-12-08T10:00:00Z',
  usedAt: '2026-12-02T10:00:00Z',
  user: 'alice',
  mail: { attempts: 2, sentAt: '2026-12-01T10:00:05Z', lastError: '421 busy' },
  accountExists: true,
};

/** The record Secret as the API server returns it: everything a list or watch event carries. */
function fullSecret(payload: object = record): V1Secret {
  const secret = secretFromRecord(payload as InvitationRecord);
  return {
    ...secret,
    metadata: {
      ...secret.metadata,
      uid: 'secret-uid',
      creationTimestamp: new Date('2026-12-01T10:00:00Z'),
      annotations: { 'example.com/note': 'x'.repeat(500) },
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'cm', uid: 'cm-uid' }],
      managedFields: [{ manager: 'usher', operation: 'Update' }],
    },
  };
}

describe('leanRecordSecret', () => {
  it('decodes to the same record as the whole Secret, and updateRecord writes the same body from it', () => {
    const full = fullSecret();
    const lean = leanRecordSecret(structuredClone(full));
    expect(isRecordSecret(lean)).toBe(true);
    expect(recordFromSecret(lean)).toEqual(recordFromSecret(full));
    // updateRecord(record) sends secretFromRecord(record): from the cache as from the whole object.
    const fromLean = recordFromSecret(lean);
    const fromFull = recordFromSecret(full);
    expect(fromLean && secretFromRecord(fromLean)).toEqual(fromFull && secretFromRecord(fromFull));
    expect(recordFromSecret(lean)?.resourceVersion).toBe('41');
  });

  it('keeps a payload field this version does not know (a newer Usher wrote it), so a write from the cache keeps it too', () => {
    const full = fullSecret({ ...record, futureField: { nested: [1, 2] } });
    const fromLean = recordFromSecret(leanRecordSecret(full));
    expect(fromLean).toMatchObject({ futureField: { nested: [1, 2] } });
    const written = fromLean && secretFromRecord(fromLean);
    expect(JSON.parse(Buffer.from(written?.data?.['record.json'] ?? '', 'base64').toString('utf8'))).toMatchObject({ futureField: { nested: [1, 2] } });
  });

  it('keeps what the index and the watches read, and drops the rest', () => {
    const lean = leanRecordSecret(fullSecret());
    expect(lean.metadata?.labels?.[INVITATION_UID_LABEL]).toBe('uid-1');
    expect(invitationOfRecord(lean)).toEqual([{ namespace: 'team-a', name: 'alice' }]);
    expect(lean.metadata).toEqual({
      name: 'inv-uid-1-1',
      namespace: 'usher-system',
      uid: 'secret-uid',
      resourceVersion: '41',
      labels: fullSecret().metadata?.labels,
    });
    expect(Object.keys(lean).sort()).toEqual(['data', 'metadata', 'type']);
  });

  it('leaves a Secret that is no record one (recordFromSecret says so either way)', () => {
    const other: V1Secret = { type: 'Opaque', metadata: { name: 'x', namespace: 'usher-system', resourceVersion: '1' }, data: { a: 'Yg==' } };
    expect(recordFromSecret(leanRecordSecret(other))).toBeUndefined();
  });
});

describe('leanLinkSecret', () => {
  it('keeps the link and the owner the watches enqueue', () => {
    const full: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: 'alice-usher-link',
        namespace: 'team-a',
        resourceVersion: '7',
        labels: { a: 'b' },
        ownerReferences: [{ apiVersion: 'usher.dev/v1alpha1', kind: 'UserInvitation', name: 'alice', uid: 'uid-1', controller: true }],
      },
      data: { link: Buffer.from('https://usher.test/accept/x.y').toString('base64'), other: 'eA==' },
    };
    const lean = leanLinkSecret(full);
    expect(lean.data).toEqual({ link: full.data?.link });
    expect(ownerOfLinkSecret(lean)).toEqual(ownerOfLinkSecret(full));
    expect(lean.metadata).toMatchObject({ name: 'alice-usher-link', namespace: 'team-a', resourceVersion: '7' });
  });
});

describe('leanNamespace', () => {
  it('keeps the labels and a deletion, which the watches and the tenant lookup read', () => {
    const full: V1Namespace = {
      metadata: {
        name: 'team-a',
        uid: 'ns-uid',
        resourceVersion: '3',
        labels: { 'usher.dev/tenant': 'acme' },
        annotations: { big: 'x'.repeat(100) },
        deletionTimestamp: new Date('2026-12-01T00:00:00Z'),
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Terminating' },
    };
    const lean = leanNamespace(full);
    expect(lean).toEqual({
      metadata: { name: 'team-a', resourceVersion: '3', labels: { 'usher.dev/tenant': 'acme' }, deletionTimestamp: full.metadata?.deletionTimestamp },
    });
    expect(labelsChanged(lean, full)).toBe(false);
  });
});
