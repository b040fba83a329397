// From a token in a link to what the page should say about it. Whether a
// link is still open is the controller's call: rather than restate its rules
// (tenancy, revocation on spec changes, reissue requests, expiry), this asks
// decide() — a pure function — what it would do with this record in the
// current world, and treats "it would delete or replace this record" as
// revoked. Unknown, forged, malformed and revoked links all come out as one
// `unknown`, so that nothing tells which tokens exist.
import type { UserInvitation } from '../api/types.ts';
import type { UsherConfig } from '../config/types.ts';
import { decide } from '../controller/decide.ts';
import type { InvitationRecord } from '../records/record.ts';
import { linkFor, parseToken, verifierMatches } from '../records/token.ts';
import type { AcceptStore } from './store.ts';

export interface Found {
  token: string;
  record: InvitationRecord;
  invitation: UserInvitation;
}

export type Lookup = { kind: 'unknown' } | { kind: 'expired'; found: Found } | { kind: 'accepted'; found: Found } | { kind: 'open'; found: Found };

const UNKNOWN: Lookup = { kind: 'unknown' };

export async function lookUp(store: AcceptStore, config: UsherConfig, token: string, now: Date): Promise<Lookup> {
  const parsed = parseToken(token);
  if (!parsed) return UNKNOWN;
  const candidates = await store.recordsBySelector(parsed.selector);
  // Every candidate's verifier is checked (in constant time), so timing does not depend on which one matches.
  const matching = candidates.filter((r) => r.selector === parsed.selector && verifierMatches(parsed.verifier, r.verifierHash));
  const record = matching.length === 1 ? matching[0] : undefined;
  if (!record) return UNKNOWN;

  const invitation = await store.invitation(record.namespace, record.invitationName);
  // The same name but another uid is a new invitation that happens to reuse the name: the old link is dead.
  if (!invitation || invitation.metadata.uid !== record.invitationUid || invitation.metadata.deletionTimestamp) return UNKNOWN;
  const found: Found = { token, record, invitation };
  if (record.usedAt) return { kind: 'accepted', found };
  // A newer issuance in status means this token was superseded, even if its record is not deleted yet.
  if ((invitation.status?.issuance ?? 0) > record.issuance) return UNKNOWN;

  const labels = await store.namespaceLabels(record.namespace);
  const plan = decide({
    invitation,
    records: [record],
    link: linkFor(config.baseUrl, token),
    namespaceTenant: labels?.[config.tenancy.namespaceLabel],
    user: undefined,
    config,
    now,
  });
  if (plan.status.phase === 'Accepted') return { kind: 'accepted', found };
  const revoked = plan.actions.some((a) => (a.kind === 'deleteRecord' && a.name === record.name) || a.kind === 'issue' || a.kind === 'ensureUser');
  if (revoked) return UNKNOWN;
  if (plan.status.phase === 'Expired' || Date.parse(record.expiresAt) <= now.getTime()) return { kind: 'expired', found };
  return { kind: 'open', found };
}
