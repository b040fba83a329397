// The link-state policy: whether the link of one invitation record may be used
// right now. One named function, so that the acceptance page does not restate
// (or infer from the controller's actions) what makes a link dead. Pure.
//
// A record is trusted only because of where it is (Usher's namespace, which
// tenants cannot write); it is still checked against the invitation it names,
// so that a record can never open anything but the invitation it was issued
// for, in the state it was issued for.
//
// How it relates to decide(): the page asks linkState() of whatever record a
// presented token finds; the controller's decide() asks "what should become of
// this invitation?" and, for the record whose link it holds (the current
// record), uses the same named checks below. So a link the page calls dead is
// one decide() acts on, check by check:
//
//   check                 linkState()   decide(), for the current record
//   isBoundTo fails       revoked       (not its record: the reconciler reads records by uid, skips deleted invitations)
//   isUsed                accepted      Accepted
//   isForAddress fails    revoked       a new token (Reissued)
//   isCurrentIssuance     revoked       (decide names the current record by its link, or else by status.issuance; others are deleted)
//   createsUserDirectly   revoked       its records deleted, the User created
//   pendingReissue        revoked       a new token, the request recorded as handled
//   forbidden / invalid   revoked       Failed, its records deleted (rules.ts)
//   hasExpired            expired       Expired, with the reissue command
//
// decide() knows one thing more, which the page cannot: whether the controller
// still holds the raw token (a link lost before it was mailed is replaced).
import { normalizeEmail } from './email.ts';
import { REISSUE_ANNOTATION, type UserInvitation } from '../api/types.ts';
import type { UsherConfig } from '../config/types.ts';
import type { InvitationRecord } from './record.ts';
import { forbiddenReason, invalidReason } from './rules.ts';

export type LinkState = 'open' | 'expired' | 'accepted' | 'revoked';

export interface LinkWorld {
  record: InvitationRecord;
  /** The invitation at record.invitationNamespace/record.invitationName, if any. */
  invitation: UserInvitation | undefined;
  /** The tenant label of the invitation's namespace. */
  namespaceTenant: string | undefined;
  config: UsherConfig;
  now: Date;
}

export function linkState(w: LinkWorld): LinkState {
  const { record, invitation } = w;
  if (!isBoundTo(record, invitation)) return 'revoked';
  if (isUsed(record)) return 'accepted';
  // Issued for another address, or superseded by a newer token (or not disclosed yet).
  if (!isForAddress(record, invitation) || !isCurrentIssuance(record, invitation)) return 'revoked';
  if (createsUserDirectly(invitation) || pendingReissue(invitation) !== undefined) return 'revoked';
  if (forbiddenReason(invitation, w.namespaceTenant, w.config) !== undefined || invalidReason(invitation, w.config) !== undefined) return 'revoked';
  if (hasExpired(record, w.now)) return 'expired';
  return 'open';
}

/** The binding: the very invitation the record was issued for (a new one reusing the name has another uid), not being deleted. */
export function isBoundTo(record: InvitationRecord, invitation: UserInvitation | undefined): invitation is UserInvitation {
  if (!invitation || invitation.metadata.deletionTimestamp) return false;
  const { uid, namespace, name } = invitation.metadata;
  return uid === record.invitationUid && namespace === record.invitationNamespace && name === record.invitationName;
}

/** The acceptance page marked the record used: accepted, for good. */
export function isUsed(record: InvitationRecord): boolean {
  return Boolean(record.usedAt);
}

/** Whether the record was issued for the address the invitation names now (a changed spec.email needs a new token). */
export function isForAddress(record: InvitationRecord, invitation: UserInvitation): boolean {
  return record.email === normalizeEmail(invitation.spec.email);
}

/** Whether status discloses this record's issuance: not superseded by a newer token, and not undisclosed yet. */
export function isCurrentIssuance(record: InvitationRecord, invitation: UserInvitation): boolean {
  return (invitation.status?.issuance ?? 0) === record.issuance;
}

/** An invitation that creates its User directly has no link. */
export function createsUserDirectly(invitation: UserInvitation): boolean {
  return Boolean(invitation.spec.createUserDirectly);
}

/** The reissue request not handled yet, if any: it kills every link issued before it. */
export function pendingReissue(invitation: UserInvitation): string | undefined {
  const request = invitation.metadata.annotations?.[REISSUE_ANNOTATION];
  return request !== undefined && request !== invitation.status?.lastHandledReissueAt ? request : undefined;
}

/** Milliseconds until the record's link expires (≤ 0 once it has). */
export function msUntilExpiry(record: InvitationRecord, now: Date): number {
  return Date.parse(record.expiresAt) - now.getTime();
}

export function hasExpired(record: InvitationRecord, now: Date): boolean {
  return msUntilExpiry(record, now) <= 0;
}
