// The fault tests' record reader: records live in Usher's namespace, not beside
// their invitations, and each test must see only its own invitations' records.
import type { CoreV1Api } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { records, USHER_NAMESPACE } from '../../chaos/support.ts';
import { secretFromRecord, type InvitationRecord } from '../../src/invitation/record.ts';

const record = (invitationNamespace: string, invitationName: string): InvitationRecord => ({
  name: `rec-${invitationNamespace}-${invitationName}`,
  namespace: USHER_NAMESPACE,
  invitationNamespace,
  invitationName,
  invitationUid: `uid-${invitationNamespace}-${invitationName}`,
  selector: `sel-${invitationName}`,
  verifierHash: 'hash',
  email: `${invitationName}@example.com`,
  issuance: 1,
  issuedAt: '2026-12-01T00:00:00Z',
  expiresAt: '2026-12-08T00:00:00Z',
});

/** A CoreV1Api that holds Secrets per namespace and notes which namespaces were listed. */
function fakeCore(secretsByNamespace: Record<string, unknown[]>): { core: CoreV1Api; listed: string[] } {
  const listed: string[] = [];
  const core = {
    listNamespacedSecret: ({ namespace }: { namespace: string }) => {
      listed.push(namespace);
      return Promise.resolve({ items: secretsByNamespace[namespace] ?? [] });
    },
  } as unknown as CoreV1Api;
  return { core, listed };
}

describe('records()', () => {
  it("reads Usher's namespace and keeps the records of the given invitation namespace only", async () => {
    const { core, listed } = fakeCore({
      [USHER_NAMESPACE]: [secretFromRecord(record('gone', 'a')), secretFromRecord(record('gone', 'b')), secretFromRecord(record('kill', 'a'))],
      // An Usher 0.1 record beside its invitation: not where records live any more.
      gone: [secretFromRecord({ ...record('gone', 'old'), namespace: 'gone' })],
    });
    const found = await records(core, 'gone');
    expect(listed).toEqual([USHER_NAMESPACE]);
    expect(found.map((r) => r.invitationName).sort()).toEqual(['a', 'b']);
    expect(found.every((r) => r.namespace === USHER_NAMESPACE && r.invitationNamespace === 'gone')).toBe(true);
  });

  it('finds none for a namespace without invitations, so a count of them can fail', async () => {
    const { core } = fakeCore({ [USHER_NAMESPACE]: [secretFromRecord(record('kill', 'a'))] });
    expect(await records(core, 'gone')).toEqual([]);
  });
});
