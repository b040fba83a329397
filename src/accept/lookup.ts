// From a token in a link to what the page should say about it. The record is
// found in the watch-fed cache by its selector (an unknown or malformed token
// costs the API server nothing), its verifier checked in constant time, and
// what the link may do is the link-state policy's call (src/invitation/).
// Unknown, forged, malformed and revoked links all come out as one `unknown`,
// so that nothing tells which tokens exist.
//
// `fresh` re-reads the record, the invitation and its namespace from the API
// server once the cache found a match: what a POST does before it writes.
import type { UserInvitation } from '../api/types.ts';
import type { UsherConfig } from '../config/types.ts';
import { linkState } from '../invitation/link-state.ts';
import type { InvitationRecord } from '../invitation/record.ts';
import { parseToken, verifierMatches } from '../invitation/token.ts';
import type { AcceptStore } from './store.ts';

export interface Found {
  token: string;
  record: InvitationRecord;
  invitation: UserInvitation;
}

export type Lookup = { kind: 'unknown' } | { kind: 'expired'; found: Found } | { kind: 'accepted'; found: Found } | { kind: 'open'; found: Found };

const UNKNOWN: Lookup = { kind: 'unknown' };

export async function lookUp(store: AcceptStore, config: UsherConfig, token: string, now: Date, opts: { fresh: boolean }): Promise<Lookup> {
  const parsed = parseToken(token);
  if (!parsed) return UNKNOWN;
  const candidates = store.cached.recordsBySelector(parsed.selector);
  // Every candidate's verifier is checked (in constant time), so timing does not depend on which one matches.
  const matching = candidates.filter((r) => r.selector === parsed.selector && verifierMatches(parsed.verifier, r.verifierHash));
  const cachedRecord = matching.length === 1 ? matching[0] : undefined;
  if (!cachedRecord) return UNKNOWN;

  let record: InvitationRecord | undefined = cachedRecord;
  let invitation: UserInvitation | undefined;
  let labels: Record<string, string> | undefined;
  if (opts.fresh) {
    record = await store.record(cachedRecord.name);
    // Re-checked: the record may have been replaced (a reissue keeps no name, but be exact).
    if (!record || record.selector !== parsed.selector || !verifierMatches(parsed.verifier, record.verifierHash)) return UNKNOWN;
    invitation = await store.invitation(record.invitationNamespace, record.invitationName);
    labels = invitation ? await store.namespaceLabels(record.invitationNamespace) : undefined;
  } else {
    invitation = store.cached.invitation(record.invitationNamespace, record.invitationName);
    labels = store.cached.namespaceLabels(record.invitationNamespace);
  }

  const state = linkState({ record, invitation, namespaceTenant: labels?.[config.tenancy.namespaceLabel], config, now });
  if (state === 'revoked' || !invitation) return UNKNOWN;
  const found: Found = { token, record, invitation };
  return { kind: state, found };
}
