// The link-state policy: whether the link of one invitation record may be used
// right now. One named function, so that the acceptance page does not restate
// (or infer from the controller's actions) what makes a link dead. Pure.
//
// A record is trusted only because of where it is (Usher's namespace, which
// tenants cannot write); it is still checked against the invitation it names,
// so that a record can never open anything but the invitation it was issued
// for, in the state it was issued for.
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
  // The binding: the very invitation the record was issued for (a new one reusing the name has another uid).
  if (!invitation || invitation.metadata.deletionTimestamp) return 'revoked';
  if (invitation.metadata.uid !== record.invitationUid || invitation.metadata.namespace !== record.invitationNamespace || invitation.metadata.name !== record.invitationName) return 'revoked';
  if (record.usedAt) return 'accepted';
  const { spec, status, metadata } = invitation;
  // Issued for another address, or superseded by a newer token (or not disclosed yet).
  if (record.email !== normalizeEmail(spec.email)) return 'revoked';
  if ((status?.issuance ?? 0) !== record.issuance) return 'revoked';
  if (spec.createUserDirectly) return 'revoked';
  const reissue = metadata.annotations?.[REISSUE_ANNOTATION];
  if (reissue !== undefined && reissue !== status?.lastHandledReissueAt) return 'revoked';
  if (forbiddenReason(invitation, w.namespaceTenant, w.config) !== undefined || invalidReason(invitation, w.config) !== undefined) return 'revoked';
  if (Date.parse(record.expiresAt) <= w.now.getTime()) return 'expired';
  return 'open';
}
