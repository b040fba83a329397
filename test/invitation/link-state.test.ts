// The link-state policy, table-driven: every way a record can stop opening
// its invitation, and the few ways it stays open.
import { describe, expect, it } from 'vitest';
import type { UserInvitation } from '../../src/api/types.ts';
import { parseConfig } from '../../src/config/load.ts';
import { linkState, type LinkWorld } from '../../src/invitation/link-state.ts';
import type { InvitationRecord } from '../../src/invitation/record.ts';

const config = parseConfig('usher:\n  tenancy:\n    instanceNamespaces: [platform]\n', { source: 'test', env: {} });
const now = new Date('2026-12-01T12:00:00Z');

const invitation: UserInvitation = {
  apiVersion: 'usher.dev/v1alpha1',
  kind: 'UserInvitation',
  metadata: { name: 'jane', namespace: 'acme-ns', uid: 'uid-1', generation: 1 },
  spec: { email: 'Jane@Example.com', tenant: 'acme', groups: ['devs'] },
  status: { issuance: 2 },
};

const record: InvitationRecord = {
  name: 'usher-invitation-uid-1-2',
  namespace: 'usher-system',
  invitationNamespace: 'acme-ns',
  invitationName: 'jane',
  invitationUid: 'uid-1',
  selector: 's',
  verifierHash: 'h',
  email: 'jane@example.com',
  issuance: 2,
  issuedAt: '2026-11-30T12:00:00Z',
  expiresAt: '2026-12-07T12:00:00Z',
};

function world(
  edit: { record?: Partial<InvitationRecord>; invitation?: (i: UserInvitation) => UserInvitation | undefined; tenant?: string | undefined } = {},
): LinkWorld {
  return {
    record: { ...record, ...edit.record },
    invitation: edit.invitation ? edit.invitation(structuredClone(invitation)) : invitation,
    namespaceTenant: 'tenant' in edit ? edit.tenant : 'acme',
    config,
    now,
  };
}

describe('linkState', () => {
  it.each<[string, Parameters<typeof world>[0], ReturnType<typeof linkState>]>([
    ['the record of the current issuance of its invitation', {}, 'open'],
    ['past its expiry', { record: { expiresAt: '2026-12-01T11:59:59Z' } }, 'expired'],
    ['used', { record: { usedAt: '2026-12-01T10:00:00Z' } }, 'accepted'],
    ['its invitation is gone', { invitation: () => undefined }, 'revoked'],
    ['its invitation is being deleted', { invitation: (i) => ({ ...i, metadata: { ...i.metadata, deletionTimestamp: '2026-12-01T11:00:00Z' } }) }, 'revoked'],
    ['another invitation reuses the name (another uid)', { record: { invitationUid: 'uid-0' } }, 'revoked'],
    ['it names another namespace', { record: { invitationNamespace: 'globex-ns' } }, 'revoked'],
    ['it names another invitation', { record: { invitationName: 'john' } }, 'revoked'],
    ['it was issued for another address', { record: { email: 'mallory@example.com' } }, 'revoked'],
    ['a newer issuance is in status', { invitation: (i) => ({ ...i, status: { issuance: 3 } }) }, 'revoked'],
    ['its issuance is not in status yet (not disclosed)', { invitation: (i) => ({ ...i, status: { issuance: 1 } }) }, 'revoked'],
    ['the invitation now creates the User directly', { invitation: (i) => ({ ...i, spec: { ...i.spec, createUserDirectly: true } }) }, 'revoked'],
    [
      'a reissue is requested and not handled yet',
      { invitation: (i) => ({ ...i, metadata: { ...i.metadata, annotations: { 'usher.dev/reissue-requested-at': 'now' } } }) },
      'revoked',
    ],
    ['its namespace lost its tenant label', { tenant: undefined }, 'revoked'],
    ['its namespace now belongs to another tenant', { tenant: 'globex' }, 'revoked'],
    ['the spec became invalid for this platform', { invitation: (i) => ({ ...i, spec: { ...i.spec, groups: [], roles: [] } }) }, 'revoked'],
    ['used, but its invitation is gone', { record: { usedAt: '2026-12-01T10:00:00Z' }, invitation: () => undefined }, 'revoked'],
  ])('%s: %s', (_what, edit, state) => {
    expect(linkState(world(edit))).toBe(state);
  });
});
